SELECT 'a' -- c
  'b', E'x'
'\'; y';
