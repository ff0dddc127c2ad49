from omnigate.cli import main

raise SystemExit(main())
