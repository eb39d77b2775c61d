"""Drive the Neo4j Browser served by the local server in headless Chromium (Debian's package)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling Google hosts this sandbox cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


def browser_graph_screenshot(http_url: str, bolt_port: int, password: str, cypher: str, png: Path) -> str:
    """Log in to the Neo4j Browser, run ``cypher``, wait for its graph view, screenshot it.

    Returns the text of the result frame's overview ("Displaying N nodes, M relationships.").
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            url = f"{http_url}/browser/?dbms=bolt://neo4j@127.0.0.1:{bolt_port}"
            page.goto(url, wait_until="networkidle")
            page.wait_for_selector("[data-testid=authenticationMethod]")
            # The login fields render only after the auth method changes (Browser 5.24).
            page.select_option("[data-testid=authenticationMethod]", "NO_AUTH")
            page.select_option("[data-testid=authenticationMethod]", "NATIVE")
            page.fill("[data-testid=username]", "neo4j")
            page.fill("[data-testid=password]", password)
            page.click("[data-testid=connect]")
            page.wait_for_selector("text=You are connected as user neo4j", timeout=30_000)
            page.click(".monaco-editor")
            page.keyboard.type(" ".join(cypher.split()))
            page.keyboard.press("Control+Enter")
            shown = r"text=/Displaying \d+ nodes?, \d+ relationships?/"
            overview = page.wait_for_selector(shown, timeout=60_000)
            page.wait_for_timeout(1500)  # let the force layout settle before the picture
            page.screenshot(path=str(png))
            text = overview.inner_text()
        finally:
            browser.close()
    match = re.search(r"Displaying \d+ nodes?, \d+ relationships?", text)
    return match.group(0) if match else text
