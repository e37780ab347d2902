from magimac.cli.main import main

raise SystemExit(main())
