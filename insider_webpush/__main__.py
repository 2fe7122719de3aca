"""``python -m insider_webpush``: the same as the ``insider-webpush`` command."""

from .cli import main

raise SystemExit(main())
