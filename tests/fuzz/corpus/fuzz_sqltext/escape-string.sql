SELECT E'\'';', e'\\', 'a\'' ; x --';
