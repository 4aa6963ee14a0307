"""`koppel test-connection` holds the SnelStart template's VAT mode against Magento's own tax setting, which the
agent reports in /v1/diagnostics; only when the agent cannot read it do recent orders decide, as a warning."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from client.connection_test import ShopPrices, _template_check, run_checks
from client.snelstart.base import Verkoopsjabloon
from tests.client.conftest import REPO, guest

SETTING = "tax/calculation/price_includes_tax"


def template_check(config: Any) -> Any:
    checks = run_checks(config, config.profile("shop"))
    # Every other check passes against the live agent, so a failure below is the template's alone.
    assert all(c.ok for c in checks if c.name != "template"), [c.line() for c in checks]
    return next(c for c in checks if c.name == "template")


def test_template_against_magentos_tax_setting(shop: Any, client_config: Any) -> None:
    shop.set_config(SETTING, "1")
    excl = template_check(client_config(orders={"template": "Webshop excl"}))
    # SPEC: a template whose VAT mode disagrees with Magento is warned about at test-connection, not refused.
    assert excl.ok and excl.warning
    assert excl.line().startswith("LET OP template: 'Webshop excl' has prices excluding VAT")
    assert f"{SETTING} = 1" in excl.detail
    assert excl.fix and "including VAT in orders.template" in excl.fix and "Catalog Prices" in excl.fix

    incl = template_check(client_config())
    assert incl.ok and not incl.warning and "entered the same way" in incl.detail

    # Never saved in the admin: Magento's default, prices excl. VAT, which the "Webshop" template is not.
    with shop.conn.cursor() as cur:
        cur.execute("DELETE FROM core_config_data WHERE path = %s", (SETTING,))
    shop._commit()
    config = client_config()
    missing = template_check(config)
    assert missing.warning and f"{SETTING} = 0" in missing.detail
    done = subprocess.run(
        [sys.executable, "-m", "client.cli", "test-connection", "--config", str(config.path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr  # a warning does not fail the check
    assert "catalogue prices excl. VAT" in done.stdout  # the Magento line shows what the agent read
    line = next(x for x in done.stdout.splitlines() if "template:" in x)
    assert line.strip().startswith("LET OP template:") and "put a verkoopsjabloon" in line


def test_recent_orders_decide_only_when_the_agent_cannot_read_the_setting(
    shop: Any, client_config: Any, magento_db: Any
) -> None:
    # The agent's database login may lack SELECT on core_config_data; here the table is simply gone.
    with magento_db.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE core_config_data")
    shop.product("1002", "Espressokopjes, set van 6")
    shop.order(items=[{"sku": "1002", "price": "20.6198"}], billing=guest("a@example.org"))  # 24.95 incl.
    guessed = template_check(client_config(orders={"template": "Webshop excl"}))
    assert guessed.ok and guessed.warning, guessed.line()
    assert (
        guessed.line().startswith("LET OP template:")
        and "recent orders look priced including" in guessed.detail
    )
    assert template_check(client_config()).line().startswith("OK   template: 'Webshop', prices including")


def test_template_check_without_an_agent_answer() -> None:
    from client.config import Profile

    profile = Profile.model_validate(
        {
            "name": "shop",
            "agent": {"url": "http://127.0.0.1:9", "key_id": "office", "secret": "x" * 32},
            "snelstart": {"backend": "local", "path": "admin.sqlite"},
            "orders": {"template": "Webshop"},
        }
    )
    incl = Verkoopsjabloon("1", "Webshop", prijs_incl_btw=True)
    assert _template_check(profile, [incl], ShopPrices(None)).line().startswith("OK   template:")
    configured = _template_check(profile, [incl], ShopPrices(False, configured=True))
    assert configured.warning and configured.line().startswith("LET OP")  # SPEC: warn at test-connection
    assert "price_includes_tax = 0" in configured.line()
    assert _template_check(profile, [incl], ShopPrices(False)).warning  # a guess only warns
