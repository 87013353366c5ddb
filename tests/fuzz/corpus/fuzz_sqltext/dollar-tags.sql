DO $body$ BEGIN EXECUTE $q$x$q$; $x$ $$; END $body$; SELECT $1, a$$b, $_9$;$_9$;
