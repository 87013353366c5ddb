SELECT	1;
;;
