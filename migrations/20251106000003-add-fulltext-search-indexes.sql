-- 20251106000003 add-fulltext-search-indexes
--
-- Source: harborgrid-justin/white-cross,
--   backend/src/database/migrations/20251106000003-add-fulltext-search-indexes.js
--   (added at 4ece9be1390883fab9014c08ab747d5338ac2d84, never changed afterwards).
--
-- What it does: installs the extensions pg_trgm and unaccent (IF NOT EXISTS, no schema, no
-- version, as the original), then builds 11 partial GIN indexes (#24-#34), in the original order:
-- inventory_items 3, students 3, medications 3, allergies 1, chronic_conditions 1.
-- True split: 3 full-text (tsvector_ops over to_tsvector('english', ...)): #24, #27, #30, and
-- 8 trigram (gin_trgm_ops): #25, #26, #28, #29, #31, #32, #33, #34. The original's audit line
-- ("GIN tsvector (5), GIN trigram (6)") and the upstream summary docs are wrong about this.
--
-- Deviations from the original, and why:
--   1. The original CANNOT RUN on the model schema: #24, #25 and #26 filter on
--      inventory_items."deletedAt", a column that exists in no definition of inventory_items
--      (the InventoryItem model is not paranoid, the deleted 00008 create-table migration has no
--      such column, and no migration ever adds it). PostgreSQL fails with
--      'column "deletedAt" does not exist', and because all 11 builds and both extensions were in
--      one transaction, the whole migration rolled back. DECISION: drop the conjunct
--      "deletedAt" IS NULL from #24-#26 and keep everything else. inventory_items has no
--      soft-delete, so the conjunct could only ever have been true; the set of rows indexed is
--      the one the original meant. (The alternative, adding a "deletedAt" column, would be a
--      schema change the original never made.)
--        #24: "isActive" = true AND "deletedAt" IS NULL                 -> "isActive" = true
--        #25: "isActive" = true AND "deletedAt" IS NULL                 -> "isActive" = true
--        #26: sku IS NOT NULL AND "isActive" = true AND "deletedAt" IS NULL
--                                                -> sku IS NOT NULL AND "isActive" = true
--   2. Every index is built CREATE INDEX CONCURRENTLY IF NOT EXISTS, one step per index, outside a
--      transaction (the original: plain CREATE INDEX IF NOT EXISTS in one transaction, SHARE locks
--      held on five tables until the commit).
--   3. The extensions are separate transactional steps that run first, so they stay installed if a
--      later index build fails (in the original they rolled back with it). Both are trusted
--      extensions on PostgreSQL 13+.
--   4. No longer all-or-nothing: a failure leaves what was built; a rerun finishes.
--
-- Kept as in the original, on purpose:
--   - unaccent is installed but USED BY NO INDEX. The "accent-insensitive search" promised by the
--     upstream summary does not exist; searching "Jose" does not find "José". Adding it would need
--     an IMMUTABLE wrapper around unaccent() (which is STABLE) and is out of scope here.
--   - The text-search configuration is 'english' (two-argument to_tsvector, IMMUTABLE), with flat
--     weights, NULLs folded to '' and single-space separators. Every concatenated column is
--     varchar/text, so || is the IMMUTABLE textcat.
--   - #24 overlaps the search_vector GIN index that upstream 20250105000000 adds on tenants built
--     from the JS migrations; it is built anyway, as in the original.
--
-- PHI: #27 (idx_students_fulltext_name_search) and #28 (idx_students_lastname_trigram) index
-- student names and are marked phi. The other indexes cover inventory, catalog, allergen and
-- condition names and student numbers.
--
-- Down: the 11 indexes dropped CONCURRENTLY IF EXISTS, in reverse order. The extensions are NOT
-- dropped (the original kept them too: other code may use them).

-- pgrollout:up

-- pgrollout:step extension name=pg_trgm
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- pgrollout:step extension name=unaccent
CREATE EXTENSION IF NOT EXISTS unaccent;

-- pgrollout:step index name=idx_inventory_items_fulltext_search table=inventory_items
-- #24 (GIN full-text; "deletedAt" conjunct dropped, see header)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_inventory_items_fulltext_search ON inventory_items USING gin (to_tsvector('english', COALESCE(name, '') || ' ' || COALESCE(description, '') || ' ' || COALESCE(category, '') || ' ' || COALESCE(supplier, ''))) WHERE "isActive" = true;

-- pgrollout:step index name=idx_inventory_items_name_trigram table=inventory_items
-- #25 (GIN trigram; "deletedAt" conjunct dropped, see header)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_inventory_items_name_trigram ON inventory_items USING gin (name gin_trgm_ops) WHERE "isActive" = true;

-- pgrollout:step index name=idx_inventory_items_sku_search table=inventory_items
-- #26 (GIN trigram; "deletedAt" conjunct dropped, see header)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_inventory_items_sku_search ON inventory_items USING gin (sku gin_trgm_ops) WHERE sku IS NOT NULL AND "isActive" = true;

-- pgrollout:step index name=idx_students_fulltext_name_search table=students phi
-- #27 (GIN full-text over student names: PHI)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_students_fulltext_name_search ON students USING gin (to_tsvector('english', COALESCE("firstName", '') || ' ' || COALESCE("lastName", ''))) WHERE "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_students_lastname_trigram table=students phi
-- #28 (GIN trigram over student last names: PHI)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_students_lastname_trigram ON students USING gin ("lastName" gin_trgm_ops) WHERE "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_students_number_trigram table=students
-- #29 (GIN trigram)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_students_number_trigram ON students USING gin ("studentNumber" gin_trgm_ops) WHERE "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_medications_fulltext_search table=medications
-- #30 (GIN full-text)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_medications_fulltext_search ON medications USING gin (to_tsvector('english', COALESCE(name, '') || ' ' || COALESCE("genericName", '') || ' ' || COALESCE(manufacturer, ''))) WHERE "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_medications_name_trigram table=medications
-- #31 (GIN trigram)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_medications_name_trigram ON medications USING gin (name gin_trgm_ops) WHERE "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_medications_generic_name_trigram table=medications
-- #32 (GIN trigram)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_medications_generic_name_trigram ON medications USING gin ("genericName" gin_trgm_ops) WHERE "genericName" IS NOT NULL AND "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_allergies_allergen_search table=allergies
-- #33 (GIN trigram)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_allergies_allergen_search ON allergies USING gin (allergen gin_trgm_ops) WHERE active = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_chronic_conditions_condition_search table=chronic_conditions
-- #34 (GIN trigram)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_chronic_conditions_condition_search ON chronic_conditions USING gin (condition gin_trgm_ops) WHERE "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:down

-- pgrollout:step drop_index name=idx_chronic_conditions_condition_search table=chronic_conditions
DROP INDEX CONCURRENTLY IF EXISTS idx_chronic_conditions_condition_search;

-- pgrollout:step drop_index name=idx_allergies_allergen_search table=allergies
DROP INDEX CONCURRENTLY IF EXISTS idx_allergies_allergen_search;

-- pgrollout:step drop_index name=idx_medications_generic_name_trigram table=medications
DROP INDEX CONCURRENTLY IF EXISTS idx_medications_generic_name_trigram;

-- pgrollout:step drop_index name=idx_medications_name_trigram table=medications
DROP INDEX CONCURRENTLY IF EXISTS idx_medications_name_trigram;

-- pgrollout:step drop_index name=idx_medications_fulltext_search table=medications
DROP INDEX CONCURRENTLY IF EXISTS idx_medications_fulltext_search;

-- pgrollout:step drop_index name=idx_students_number_trigram table=students
DROP INDEX CONCURRENTLY IF EXISTS idx_students_number_trigram;

-- pgrollout:step drop_index name=idx_students_lastname_trigram table=students
DROP INDEX CONCURRENTLY IF EXISTS idx_students_lastname_trigram;

-- pgrollout:step drop_index name=idx_students_fulltext_name_search table=students
DROP INDEX CONCURRENTLY IF EXISTS idx_students_fulltext_name_search;

-- pgrollout:step drop_index name=idx_inventory_items_sku_search table=inventory_items
DROP INDEX CONCURRENTLY IF EXISTS idx_inventory_items_sku_search;

-- pgrollout:step drop_index name=idx_inventory_items_name_trigram table=inventory_items
DROP INDEX CONCURRENTLY IF EXISTS idx_inventory_items_name_trigram;

-- pgrollout:step drop_index name=idx_inventory_items_fulltext_search table=inventory_items
DROP INDEX CONCURRENTLY IF EXISTS idx_inventory_items_fulltext_search;
