SELECT U&'d\0061t;' UESCAPE '!', U&"a;""b", b'01', X'ff', N'n';
