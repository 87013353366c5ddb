-- agent-role.sql - the least-privilege database role of pgrollout-agent, for one tenant database.
--
-- Run as a superuser, connected to the tenant database, once per tenant database (it is
-- idempotent: run it again after a restore or when a table was re-created):
--
--   psql -X -v ON_ERROR_STOP=1 -d tenant_0042 -f deploy/sql/agent-role.sql \
--        -v app_role=whitecross_app [-v agent_role=pgrollout_agent] [-v owner_role=tenant_owner]
--
-- app_role is required: the role(s) the application connects as keep CONNECT and TEMPORARY on
-- the database and SELECT, INSERT, UPDATE, DELETE on the tenant tables (they lose ownership of
-- them here). Pass -v app_role= (empty) only for a database no application uses.
--
-- What the agent ends up with (docs/OPERATIONS.md, "Least privilege for the agent's database
-- role", says why each line is needed; tests/security/test_privilege.c runs this file and then
-- apply, verify and rollback as the role, and checks what it must not be able to do):
--   - LOGIN, and nothing else at cluster level: no SUPERUSER, CREATEDB, CREATEROLE,
--     REPLICATION or BYPASSRLS; no password here (set one with \password, or use certificates);
--   - membership (INHERIT) in the NOLOGIN role owner_role, which owns the eight White Cross
--     tables: CREATE INDEX [CONCURRENTLY], DROP INDEX and ALTER TABLE ... ADD/VALIDATE/DROP
--     CONSTRAINT require the table's owner, and the foreign key's parent table is one of them;
--   - CREATE on schema public (PostgreSQL checks it for every new index);
--   - no right of owner_role on the schemas pgrollout and pgrollout_quarantine: the author's SQL
--     of `sql`, `extension` and `drop_index` steps runs as owner_role (SET ROLE,
--     agent.owner_role), so its ordinary statements cannot touch the agent's state or audit
--     outbox (SQL that runs RESET ROLE itself can: the audit barrier, not the role, is the
--     guarantee; docs/SECURITY.md 5.1);
--   - ownership of the schemas pgrollout (its state) and pgrollout_quarantine (orphan rows
--     moved aside), created here, so it needs no CREATE on the database;
--   - CONNECT on this database only: CONNECT and TEMPORARY are revoked from PUBLIC, so an agent
--     role of another tenant cannot even connect here.
-- The extensions of migration 20251106000003 (pg_trgm, unaccent) are installed here, by the
-- superuser, so that the migration's CREATE EXTENSION IF NOT EXISTS finds them and needs no
-- CREATE on the database. A later migration with another extension: add it below.
-- Backups (--backup) are NOT covered: pg_dump needs to read every table of the database.

\set ON_ERROR_STOP on
\if :{?agent_role}
\else
\set agent_role pgrollout_agent
\endif
\if :{?owner_role}
\else
\set owner_role tenant_owner
\endif
\if :{?app_role}
\else
DO $$BEGIN RAISE EXCEPTION 'agent-role.sql: pass -v app_role=ROLE (the application role; empty for none)'; END$$;
\endif
SELECT :'app_role' <> '' AS has_app_role \gset

BEGIN;
SET LOCAL client_min_messages = warning;

-- Roles (cluster-wide; created by the first run, their attributes enforced by every run).
SELECT format('CREATE ROLE %I NOLOGIN', :'owner_role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'owner_role') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'agent_role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'agent_role') \gexec
ALTER ROLE :"owner_role" NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE :"agent_role" LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
  NOBYPASSRLS;
GRANT :"owner_role" TO :"agent_role";

-- The tenant tables the migrations change: owned by owner_role (sequences owned by their
-- columns move with them).
ALTER TABLE public.allergies           OWNER TO :"owner_role";
ALTER TABLE public.chronic_conditions  OWNER TO :"owner_role";
ALTER TABLE public.inventory_items     OWNER TO :"owner_role";
ALTER TABLE public.medication_logs     OWNER TO :"owner_role";
ALTER TABLE public.medications         OWNER TO :"owner_role";
ALTER TABLE public.student_medications OWNER TO :"owner_role";
ALTER TABLE public.students            OWNER TO :"owner_role";
ALTER TABLE public.users               OWNER TO :"owner_role";

-- New indexes live in the schema of their table.
GRANT USAGE, CREATE ON SCHEMA public TO :"agent_role";

-- The agent's own schemas, with every table already in them (a tenant first migrated by
-- another role).
CREATE SCHEMA IF NOT EXISTS pgrollout AUTHORIZATION :"agent_role";
CREATE SCHEMA IF NOT EXISTS pgrollout_quarantine AUTHORIZATION :"agent_role";
ALTER SCHEMA pgrollout OWNER TO :"agent_role";
ALTER SCHEMA pgrollout_quarantine OWNER TO :"agent_role";
SELECT format('ALTER TABLE %I.%I OWNER TO %I', schemaname, tablename, :'agent_role')
  FROM pg_tables WHERE schemaname IN ('pgrollout', 'pgrollout_quarantine') \gexec
REVOKE ALL ON SCHEMA pgrollout, pgrollout_quarantine FROM PUBLIC;
-- owner_role has no right there: migration SQL running as it cannot read or change the
-- agent's state, its jobs or its audit outbox unless it runs RESET ROLE itself
-- (docs/SECURITY.md 5.1 says what stops that).
REVOKE ALL ON SCHEMA pgrollout, pgrollout_quarantine FROM :"owner_role";
REVOKE ALL ON ALL TABLES IN SCHEMA pgrollout, pgrollout_quarantine FROM :"owner_role";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgrollout, pgrollout_quarantine FROM :"owner_role";

-- Trusted extensions the migrations create, pre-installed so no CREATE on the database is needed.
CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public;

-- The database: only the agent and the application connect.
\if :has_app_role
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', current_database(), :'app_role')
\gexec
GRANT SELECT, INSERT, UPDATE, DELETE ON public.allergies, public.chronic_conditions,
  public.inventory_items, public.medication_logs, public.medications, public.student_medications,
  public.students, public.users TO :"app_role";
\endif
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database()) \gexec
SELECT format('REVOKE CREATE, TEMPORARY ON DATABASE %I FROM %I', current_database(),
              :'agent_role') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'agent_role') \gexec

COMMIT;
