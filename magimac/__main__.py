from magimac.cli import main

raise SystemExit(main())
