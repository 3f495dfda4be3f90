"""``python -m token_service``: token_service as its own process."""

from token_service.service import main

main()
