"""laptop_agents.security: encrypted credentials and the signed live opt-in.

* :mod:`secret`: ``SecretStr`` (never renders its value) and the log-masking filter.
* :mod:`passphrase`: where the passphrase comes from (systemd credential, Docker secret, file named by env).
* :mod:`credentials_file`: the AES-256-GCM/scrypt credentials file (versioned, authenticated metadata).
* :mod:`optin`: Ed25519-signed opt-in documents and :func:`optin.check_live_gate`, the one live gate.
* :mod:`cli`: ``la secrets ...`` and ``la live optin ...``.
* :mod:`errors`: one-line ``LaError`` subclasses; none ever carries a secret.

Submodules are imported on use (not here) so ``la --help`` stays fast.
"""
