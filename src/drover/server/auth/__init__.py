"""Authentication: API tokens, password and OIDC sessions, and the principal they resolve to."""
