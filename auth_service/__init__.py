"""auth_service: installations, permanent codes and the individual-developer install limits."""
