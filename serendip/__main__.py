from serendip.cli import main

raise SystemExit(main())
