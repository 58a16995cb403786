"""The README's picture of the explorer's sequence view, taken in headless Chromium from demo 09's page.

Opens ``out/09_explorer.html`` (run ``python demos/09_what_units_learn.py`` first) and
takes the sequence view twice: as the page opens, coloured by the unit that
matches the nesting depth best; then coloured by connectivity, with the pointer
on the closing bracket whose opening bracket is farthest back among the first
``--shown`` characters. The two are stacked into one picture.

    python scripts/screenshot_sequence.py [--page out/09_explorer.html] \
        [--out docs/images/explorer_sequence.png]

Needs Chromium and chromedriver (``sh scripts/install_chromium.sh``), selenium and
Pillow (matplotlib's).
"""
import argparse
import io
import json
import sys
from pathlib import Path

from PIL import Image

from explorer_check import browser  # the script beside this one: run as a script, scripts/ is on the path

ROOT = Path(__file__).resolve().parent.parent


def farthest_closing(tokens):
    """The position of the closing bracket whose opening bracket is farthest back."""
    stack, best, distance = [], 0, -1
    for position, token in enumerate(tokens):
        if token in "([":
            stack.append(position)
        elif token in ")]" and stack:
            opened = stack.pop()
            if position - opened > distance:
                best, distance = position, position - opened
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--page", default=str(ROOT / "out" / "09_explorer.html"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "explorer_sequence.png"))
    args = parser.parse_args(argv)
    page = Path(args.page).resolve()
    if not page.exists():
        sys.exit(f"screenshot_sequence: {page} does not exist; run python demos/09_what_units_learn.py")
    from selenium.webdriver import ActionChains

    driver = browser(1500, 900)
    try:
        driver.get(page.as_uri())
        view = driver.find_element("id", "tokens")
        shots = [view.screenshot_as_png]
        driver.execute_script("const s = document.getElementById('colour-by'); s.value = '-1';"
                              "s.dispatchEvent(new Event('change'));")
        tokens = json.loads(driver.find_element("id", "explorer-data").get_attribute("textContent"))["tokens"]
        before = farthest_closing(tokens) - 1  # the step whose prediction is that closing bracket
        closing = driver.find_element("css selector", f'#lines .token[data-t="{before}"]')
        ActionChains(driver).move_to_element(closing).perform()
        shots.append(view.screenshot_as_png)
    finally:
        driver.quit()
    images = [Image.open(io.BytesIO(shot)) for shot in shots]
    stacked = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images) + 12), "white")
    stacked.paste(images[0], (0, 0))
    stacked.paste(images[1], (0, images[0].height + 12))
    stacked.save(args.out)
    print(f"screenshot: {args.out}")


if __name__ == "__main__":
    main()
