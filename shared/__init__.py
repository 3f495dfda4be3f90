"""Code more than one wecom-suite service uses; it imports no service."""
