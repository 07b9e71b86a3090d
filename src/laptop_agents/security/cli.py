"""`la secrets ...` and `la live optin ...`: thin argparse front-ends over the security modules.

Mounted by `cli.py` with two lines each::

    from laptop_agents.security import cli as security_cli
    security_cli.add_secrets_arguments(sub.add_parser("secrets", allow_abbrev=False, help=...))
    security_cli.add_live_arguments(sub.add_parser("live", allow_abbrev=False, help=...))
    # dispatch: "secrets" -> security_cli.run_secrets(args), "live" -> security_cli.run_live(args),
    # except `la live preflight`, which cli.py sends to session/preflight.py (it places a real order, and
    # security/ imports no execution/: tests/unit/test_import_graph.py)

No option accepts a secret value: API keys come from a file or stdin, passphrases
from the sources in :mod:`passphrase` (or a *path* given with ``--new-passphrase-file``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from laptop_agents.core.errors import UsageError
from laptop_agents.core.models import utc_iso
from laptop_agents.security.credentials_file import (
    api_key_fingerprint,
    load_credentials,
    parse_plaintext_credentials,
    read_header,
    shred_file,
    write_credentials_file,
)
from laptop_agents.security.errors import OptInError
from laptop_agents.security.optin import (
    build_payload,
    document,
    generate_operator_key,
    limits_in_force,
    load_private_key,
    parse_public_key,
    read_document,
    sign_payload,
    verify_signature,
    write_document,
)
from laptop_agents.security.passphrase import (
    DEFAULT_FILE_ENV,
    DEFAULT_NAME,
    PassphraseSource,
)
from laptop_agents.security.secret import SecretStr

if TYPE_CHECKING:
    from laptop_agents.core.config_models import AppConfig
    from laptop_agents.security.credentials import Credentials

NEW_PASSPHRASE_FILE_ENV = "LA_NEW_PASSPHRASE_FILE"
DEFAULT_CREDENTIALS = Path("secrets/bitunix.credentials.enc")


def _passphrase_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--passphrase-name", default=DEFAULT_NAME, metavar="NAME",
                   help=f"systemd credential / Docker secret name holding the passphrase (default {DEFAULT_NAME}); "
                        f"or set ${DEFAULT_FILE_ENV} to a file holding it. Never given on the command line.")


def _source(args: argparse.Namespace) -> PassphraseSource:
    return PassphraseSource(name=args.passphrase_name)


# --------------------------------------------------------------------------- la secrets
def add_secrets_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Manage the encrypted exchange credentials file."
    sub = parser.add_subparsers(dest="secrets_command", required=True, metavar="{encrypt,verify,rotate}")

    p = sub.add_parser("encrypt", allow_abbrev=False, help="encrypt API key/secret read from a plaintext file or stdin")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--in", dest="input", type=Path, metavar="PLAINTEXT",
                     help="plaintext file (BITUNIX_API_KEY=... / BITUNIX_SECRET_KEY=..., see secrets.example)")
    src.add_argument("--stdin", action="store_true", help="read the plaintext from stdin")
    p.add_argument("--out", type=Path, default=DEFAULT_CREDENTIALS, help=f"encrypted file (default {DEFAULT_CREDENTIALS})")
    p.add_argument("--shred", action="store_true", help="overwrite and delete the plaintext file afterwards")
    p.add_argument("--label", default="", help="free text stored (authenticated) in the metadata")
    p.add_argument("--force", action="store_true", help="replace an existing encrypted file")
    _passphrase_args(p)

    p = sub.add_parser("verify", allow_abbrev=False, help="decrypt in memory and report the API-key fingerprint")
    p.add_argument("--file", type=Path, default=DEFAULT_CREDENTIALS)
    _passphrase_args(p)

    p = sub.add_parser("rotate", allow_abbrev=False, help="re-encrypt under a new passphrase and/or with new API keys")
    p.add_argument("--file", type=Path, default=DEFAULT_CREDENTIALS)
    p.add_argument("--new-passphrase-file", type=Path, metavar="PATH",
                   help=f"file holding the new passphrase (or set ${NEW_PASSPHRASE_FILE_ENV})")
    keys = p.add_mutually_exclusive_group()
    keys.add_argument("--new-keys", type=Path, metavar="PLAINTEXT", help="plaintext file with the new API key pair")
    keys.add_argument("--new-keys-stdin", action="store_true", help="read the new API key pair from stdin")
    p.add_argument("--shred", action="store_true", help="overwrite and delete the --new-keys file afterwards")
    _passphrase_args(p)


def run_secrets(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    cmd = args.secrets_command
    if cmd == "encrypt":
        return _encrypt(args, out)
    if cmd == "verify":
        return _verify(args, out)
    if cmd == "rotate":
        return _rotate(args, out)
    raise UsageError(f"unknown secrets command {cmd!r}")


def _read_plaintext(path: Path | None, use_stdin: bool) -> Credentials:
    if use_stdin:
        return parse_plaintext_credentials(sys.stdin.read())
    assert path is not None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read plaintext credentials {path}: {exc.strerror}") from None
    return parse_plaintext_credentials(text)


def _encrypt(args: argparse.Namespace, out: TextIO) -> int:
    if args.shred and args.stdin:
        raise UsageError("--shred needs --in FILE (there is no file to shred when reading stdin)")
    if args.out.exists() and not args.force:
        raise UsageError(f"{args.out} already exists; use `la secrets rotate` or pass --force")
    if args.input is not None and args.input.resolve() == args.out.resolve():
        raise UsageError("--in and --out must be different files")
    passphrase = _source(args).read()
    credentials = _read_plaintext(args.input, args.stdin)
    header = write_credentials_file(args.out, credentials, passphrase, label=args.label)
    load_credentials(args.out, passphrase)  # read back before destroying the only other copy
    if args.shred and args.input is not None:
        shred_file(args.input)
    print(f"encrypted credentials written to {args.out} (account {header.fingerprint})", file=out)
    if args.input is not None and not args.shred:
        print(f"warning: the plaintext {args.input} is still on disk; delete it (or re-run with --shred)", file=out)
    return 0


def _verify(args: argparse.Namespace, out: TextIO) -> int:
    credentials = load_credentials(args.file, _source(args).read())
    header = read_header(args.file)
    print(
        f"OK {args.file}: decrypts, account {api_key_fingerprint(credentials.api_key)}, "
        f"created {header.metadata.get('created_at')}",
        file=out,
    )
    return 0


def _rotate(args: argparse.Namespace, out: TextIO) -> int:
    new_pass_path = args.new_passphrase_file or (
        Path(os.environ[NEW_PASSPHRASE_FILE_ENV]) if os.environ.get(NEW_PASSPHRASE_FILE_ENV) else None
    )
    new_keys = args.new_keys is not None or args.new_keys_stdin
    if new_pass_path is None and not new_keys:
        raise UsageError("rotate needs --new-passphrase-file and/or --new-keys/--new-keys-stdin")
    if args.shred and args.new_keys is None:
        raise UsageError("--shred needs --new-keys FILE")
    old_pass = _source(args).read()
    credentials = load_credentials(args.file, old_pass)  # proves the old passphrase before changing anything
    label = str(read_header(args.file).metadata.get("label", ""))
    new_pass: SecretStr = old_pass
    if new_pass_path is not None:
        new_pass = PassphraseSource(explicit_file=new_pass_path).read()
    if new_keys:
        credentials = _read_plaintext(args.new_keys, args.new_keys_stdin)
    header = write_credentials_file(args.file, credentials, new_pass, label=label)  # atomic replace
    load_credentials(args.file, new_pass)
    if args.shred and args.new_keys is not None:
        shred_file(args.new_keys)
    what = " and ".join(x for x in ("passphrase" if new_pass_path else "", "API keys" if new_keys else "") if x)
    print(f"rotated {what} of {args.file} (account {header.fingerprint})", file=out)
    if new_keys:
        print("the new account needs a new signed opt-in: `la live optin create` + `sign`", file=out)
    if new_pass_path is not None:
        print("now replace the passphrase at its source (systemd credential / Docker secret / file)", file=out)
    return 0


# --------------------------------------------------------------------------- la live optin
def add_live_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Live-trading consent: the signed opt-in document."
    sub = parser.add_subparsers(dest="live_command", required=True, metavar="{optin,preflight}")
    pf = sub.add_parser("preflight", allow_abbrev=False,
                        help="one minimum-size REAL round trip checking the exchange answers as the client expects")
    pf.add_argument("--yes-place-a-real-order", action="store_true", help="required: this trades real money")
    pf.add_argument("--config-dir", type=Path, help="config directory (default: $LA_CONFIG_DIR or ./config)")
    pf.add_argument("--workspace", help="workspace root (default $LA_WORKSPACE or ./.workspace); record in <it>/live/")
    pf.add_argument("--rest-url", help="exchange REST base URL (default settings bitunix.rest_url)")
    optin = sub.add_parser("optin", allow_abbrev=False, help="create, sign and verify the signed live opt-in")
    osub = optin.add_subparsers(dest="optin_command", required=True, metavar="{keygen,create,sign,verify}")

    p = osub.add_parser("keygen", allow_abbrev=False, help="create the operator's Ed25519 key pair; prints the public key to pin")
    p.add_argument("--key", type=Path, required=True, help="private key file to create (mode 0600)")
    p.add_argument("--key-passphrase-file", type=Path, help="encrypt the private key with the passphrase in this file")

    p = osub.add_parser("create", allow_abbrev=False, help="write an UNSIGNED opt-in bound to account, symbol, limits, config hash")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--credentials", type=Path, default=DEFAULT_CREDENTIALS,
                   help="encrypted credentials file (its fingerprint is read without the passphrase)")
    p.add_argument("--config-dir", type=Path, help="config directory (default: $LA_CONFIG_DIR or ./config, resolved "
                   "by the shell as for `la run`)")
    p.add_argument("--valid-days", type=float, default=7.0, help="expiry, in days from now (max 90)")
    p.add_argument("--note", default="", help="free text, signed with the rest")

    p = osub.add_parser("sign", allow_abbrev=False, help="sign an opt-in with the operator's private key")
    p.add_argument("--in", dest="input", type=Path, required=True)
    p.add_argument("--out", type=Path, help="signed output (default: sign in place)")
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--key-passphrase-file", type=Path)

    p = osub.add_parser("verify", allow_abbrev=False, help="check an opt-in's signature, expiry and (optionally) config/account")
    p.add_argument("--in", dest="input", type=Path, required=True)
    p.add_argument("--pubkey", required=True, help="the pinned public key, ed25519:<base64> (not secret)")
    p.add_argument("--config-dir", type=Path, help="also check symbol, limits and config hash against this config")
    p.add_argument("--credentials", type=Path, help="also check the account fingerprint against this file")


def run_live(args: argparse.Namespace, out: TextIO | None = None, now: datetime | None = None, *,
             load_config: Callable[[Path], AppConfig]) -> int:
    """`la live optin ...`. ``load_config`` reads a config directory: the shell's loader, handed in (security/
    reads no config files of its own)."""
    out = out or sys.stdout
    now = now or datetime.now(UTC)
    if args.live_command != "optin":  # `la live preflight` trades: cli.py dispatches it to session/preflight.py
        raise UsageError(f"unknown live command {args.live_command!r}")
    cmd = args.optin_command
    if cmd == "keygen":
        key_pass = PassphraseSource(explicit_file=args.key_passphrase_file).read() if args.key_passphrase_file else None
        pub = generate_operator_key(args.key, key_pass)
        print(f"private key: {args.key} (keep it offline; mode 0600)", file=out)
        print(f"public key (pin as live.optin_public_key): {pub}", file=out)
        return 0
    if cmd == "create":
        if args.config_dir is None:  # the shell (cli.py) resolves --config-dir > $LA_CONFIG_DIR > ./config first
            raise UsageError("la live optin create needs a config directory (--config-dir or $LA_CONFIG_DIR)")
        config = load_config(args.config_dir)
        fingerprint = read_header(args.credentials).fingerprint
        payload = build_payload(config, fingerprint, now=now, valid_for=timedelta(days=args.valid_days), note=args.note)
        write_document(args.out, document(payload))
        print(
            f"unsigned opt-in written to {args.out}: account {payload.account_fingerprint}, {payload.symbol}, "
            f"config {payload.config_hash[:12]}, expires {utc_iso(payload.expires_at)}",
            file=out,
        )
        for name, value in payload.limits.items():
            print(f"  {name} = {value}", file=out)
        print("review it, then: la live optin sign --in ... --key ...", file=out)
        return 0
    if cmd == "sign":
        payload, _ = read_document(args.input)
        key_pass = PassphraseSource(explicit_file=args.key_passphrase_file).read() if args.key_passphrase_file else None
        key = load_private_key(args.key, key_pass)
        target = args.out or args.input
        write_document(target, sign_payload(payload, key))
        print(f"signed opt-in written to {target} (expires {utc_iso(payload.expires_at)})", file=out)
        return 0
    if cmd == "verify":
        payload, signature = read_document(args.input)
        verify_signature(payload, signature, parse_public_key(args.pubkey))
        if now >= payload.expires_at:
            raise OptInError(f"opt-in {args.input} expired at {utc_iso(payload.expires_at)}")
        problems: list[str] = []
        if args.config_dir is not None:
            config = load_config(args.config_dir)
            if payload.symbol != config.strategy.symbol:
                problems.append(f"symbol {payload.symbol} != config {config.strategy.symbol}")
            if payload.limits != limits_in_force(config):
                problems.append("risk limits differ from the config")
            if payload.config_hash != config.config_hash:
                problems.append("config hash differs (config changed since signing)")
        if args.credentials is not None:
            fp = read_header(args.credentials).fingerprint
            if fp != payload.account_fingerprint:
                problems.append(f"account {payload.account_fingerprint} != credentials {fp}")
        if problems:
            raise OptInError(f"opt-in {args.input} is validly signed but does not match: {'; '.join(problems)}")
        print(
            f"OK {args.input}: signed by the pinned key, account {payload.account_fingerprint}, {payload.symbol}, "
            f"expires {utc_iso(payload.expires_at)}",
            file=out,
        )
        return 0
    raise UsageError(f"unknown optin command {cmd!r}")
