"""``python -m auth_service``: auth_service as its own process."""

from auth_service.service import main

main()
