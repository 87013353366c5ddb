SELECT 'open; /* "x $
