"""``koppel-agent deploy``: put the agent on a webserver over SSH/SFTP or FTP(S), or roll it back.

``DESCRIPTION`` and ``EXAMPLES`` are what ``koppel-agent deploy --help`` prints, so they are plain text.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

SCHEMES = ("ssh", "sftp", "ftps", "ftp")
DESCRIPTION = """\
Put the agent on a webserver over SSH/SFTP or FTP(S) as a new release, switch to it and check that it
answers; or switch back to the release before (--rollback), or list the releases (--list).

A target path starting with /~/ is taken from the login's home folder; any other path is absolute."""
EXAMPLES = """\
examples:
  koppel-agent deploy ssh://koppel@shop.example.nl/~/koppel --config agent.yml \\
      --health-url https://shop.example.nl/koppel/v1/health
  koppel-agent deploy ssh://koppel@shop.example.nl/~/koppel --rollback
  koppel-agent deploy ftps://shopuser@ftp.example.nl/~/koppel --config agent.yml --packages local \\
      --password-env KOPPEL_FTP_PASSWORD"""


def _keep(value: str) -> int:
    if not value.isdigit() or int(value) < 2:
        raise argparse.ArgumentTypeError(
            "--keep wants a whole number of at least 2 (the running and the one before)"
        )
    return int(value)


def register(sub: Any) -> None:
    """Add the deploy sub-command to koppel-agent's parser."""
    p = sub.add_parser(
        "deploy",
        help="upload a release to the webserver over SSH/SFTP or FTP(S), switch to it; or roll back",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", help="ssh://USER@HOST[:PORT]/PATH, sftp://… or ftps://USER@HOST[:PORT]/PATH")
    p.add_argument(
        "--config",
        default=os.environ.get("KOPPEL_AGENT_CONFIG"),
        metavar="FILE",
        help="the agent.yml for the server, shipped with mode 0600 (default: $KOPPEL_AGENT_CONFIG)",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--rollback", action="store_true", help="switch back to the release before the running one"
    )
    what.add_argument("--list", action="store_true", help="list the releases on the server")
    p.add_argument("--keep", type=_keep, default=5, help="releases to keep on the server (default 5)")
    p.add_argument(
        "--packages",
        default="pypi",
        metavar="pypi|local|DIR",
        help="where the server gets the agent's packages: pypi (pinned, the server downloads them), local "
        "(this machine's, when the server has the same platform and Python) or a folder of wheels",
    )
    p.add_argument("--health-url", metavar="URL", help="after the restart, wait for this URL to answer 200")
    p.add_argument(
        "--health-timeout", type=float, default=60, metavar="S", help="seconds to wait (default 60)"
    )
    p.add_argument(
        "--password-env", metavar="VAR", help="take the SSH/FTP password from this environment variable"
    )
    p.add_argument("--ask-password", action="store_true", help="ask for the SSH/FTP password")
    ssh = p.add_argument_group("SSH/SFTP")
    ssh.add_argument("--key", type=Path, metavar="FILE", help="private key (default: ssh-agent, ~/.ssh/id_*)")
    ssh.add_argument("--key-passphrase-env", metavar="VAR", help="the key's passphrase from this variable")
    ssh.add_argument(
        "--known-hosts",
        type=Path,
        default=Path("~/.ssh/known_hosts").expanduser(),
        metavar="FILE",
        help="host keys to trust and where a confirmed one is added (default ~/.ssh/known_hosts)",
    )
    ssh.add_argument(
        "--accept-host-key", metavar="SHA256:…", help="trust an unknown host with this fingerprint"
    )
    ssh.add_argument("--python", default="python3", help="Python 3.11+ on the server (default python3)")
    ssh.add_argument(
        "--restart-command",
        default=None,
        metavar="CMD",
        help="run in the base folder after the switch (default: sudo -n systemctl restart koppel-agent; "
        "'' for none)",
    )
    ftp = p.add_argument_group("FTP(S)")
    ftp.add_argument("--ca-file", type=Path, metavar="FILE", help="trust this certificate for FTPS")
    ftp.add_argument(
        "--allow-plain-ftp", action="store_true", help="allow ftp:// (agent.yml travels unencrypted)"
    )
    p.set_defaults(func=cmd_deploy)


def _password(args: argparse.Namespace) -> str | None:
    if args.password_env:
        value = os.environ.get(args.password_env)
        if value is None:
            raise SystemExit(f"koppel-agent deploy: --password-env: {args.password_env} is not set")
        return value
    if args.ask_password:
        return getpass.getpass("password: ")
    return None


def _ask_host_key(host: str, kind: str, fingerprint: str) -> bool:
    if not sys.stdin.isatty():
        return False
    print(f"{host} is not a known host. Its {kind} key has fingerprint\n    {fingerprint}")
    answer = input("Is that the server's key (compare it with your hosting panel)? [yes/no] ")
    return answer.strip().lower() == "yes"


def open_target(args: argparse.Namespace, console: Any) -> Any:
    """Connect to the server the target URL names (DeployError on failure)."""
    url = urlsplit(args.target)
    if url.password is not None:  # checked first: the messages below repeat the target
        raise SystemExit(
            "koppel-agent deploy: put no password in the target; use --password-env or --ask-password"
        )
    if url.scheme not in SCHEMES or not url.hostname or not url.username:
        raise SystemExit(
            f"koppel-agent deploy: target {args.target!r}: want ssh://USER@HOST[:PORT]/PATH or ftps://…"
        )
    try:
        port = url.port
    except ValueError:
        raise SystemExit(
            f"koppel-agent deploy: target {args.target!r}: the port must be a number from 1 to 65535"
        ) from None
    path = unquote(url.path)
    if path in ("", "/"):
        raise SystemExit("koppel-agent deploy: the target needs a folder, e.g. ssh://user@host/~/koppel")
    base = path[3:] if path.startswith("/~/") else path
    password = _password(args)
    if password:
        console.add_secrets([password])
    if url.scheme in ("ssh", "sftp"):
        from deploy.ssh import DEFAULT_RESTART, SshSettings, SshTarget

        if args.key is not None and not args.key.is_file():
            raise SystemExit(f"koppel-agent deploy: --key {args.key}: no such file")
        passphrase = None
        if args.key_passphrase_env:
            passphrase = os.environ.get(args.key_passphrase_env)
            if passphrase is None:
                raise SystemExit(
                    f"koppel-agent deploy: --key-passphrase-env: {args.key_passphrase_env} is not set"
                )
            console.add_secrets([passphrase])
        settings = SshSettings(
            host=url.hostname,
            user=unquote(url.username),
            base=base,
            port=port or 22,
            key_file=args.key,
            key_passphrase=passphrase,
            password=password,
            known_hosts=args.known_hosts,
            accept_host_key=args.accept_host_key,
            python=args.python,
            restart_command=DEFAULT_RESTART if args.restart_command is None else args.restart_command,
        )
        return SshTarget(settings, ask=_ask_host_key)
    from deploy.ftp import FtpSettings, FtpTarget

    if url.scheme == "ftp" and not args.allow_plain_ftp:
        raise SystemExit(
            "koppel-agent deploy: ftp:// sends the password and agent.yml unencrypted; use ftps:// "
            "(or --allow-plain-ftp if the host truly offers nothing else)"
        )
    if password is None:
        if not sys.stdin.isatty():
            raise SystemExit(
                "koppel-agent deploy: FTP needs a password: --password-env VAR or --ask-password"
            )
        password = getpass.getpass(f"FTP password for {url.username}@{url.hostname}: ")
        console.add_secrets([password])
    return FtpTarget(
        FtpSettings(
            host=url.hostname,
            user=unquote(url.username),
            password=password,
            base=base,
            port=port or 21,
            tls=url.scheme == "ftps",
            ca_file=args.ca_file,
        )
    )


def cmd_deploy(args: argparse.Namespace) -> int:
    from deploy import flow
    from deploy.release import ReleaseError, build_release, new_stamp

    console = flow.Console(lambda text: print(text, flush=True))
    if not (args.rollback or args.list) and not args.config:
        raise SystemExit("koppel-agent deploy: give --config FILE (the agent.yml for the server)")
    target = None
    try:
        target = open_target(args, console)
        if args.list:
            flow.describe(target, console)
            return 0
        if args.rollback:
            flow.rollback(target, console, health_url=args.health_url, health_timeout=args.health_timeout)
            return 0
        with tempfile.TemporaryDirectory(prefix="koppel-release-") as work:
            layout = "vendor" if args.target.startswith("ftp") else "venv"
            with flow.step(console, "inspect", "choosing the new release's name"):
                stamp = flow.unique_stamp(new_stamp(), target.releases())
            with flow.step(console, "build", f"building release {stamp} from {args.config}"):
                release = build_release(
                    Path(args.config), Path(work), packages=args.packages, layout=layout, stamp=stamp
                )
            console.add_secrets(release.secrets)
            flow.deploy(
                target,
                release,
                console,
                keep=args.keep,
                health_url=args.health_url,
                health_timeout=args.health_timeout,
            )
        return 0
    except flow.DeployError as exc:
        console.say(f"koppel-agent deploy: failed at step {exc.step}: {exc.message}")
        return 1
    except ReleaseError as exc:
        console.say(f"koppel-agent deploy: failed at step build: {exc}")
        return 1
    except Exception as exc:
        if getattr(args, "debug", False):
            raise
        # Said here rather than by koppel-agent's last-resort handler: the console blanks out the secrets.
        console.say(
            f"koppel-agent deploy: unexpected error: {type(exc).__name__}: {exc} "
            "(run it again with --debug for the details)"
        )
        return 1
    finally:
        if target is not None:
            target.close()
