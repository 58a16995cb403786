"""viz.explore in a real browser: headless Chromium driven by selenium, network off.

Every page is loaded from a file:// URL; a test fails on any request other than
file:// and data:, and on any console error. Needs Debian's chromium and
chromium-driver (scripts/install_chromium.sh, run by `make test` as root) and
selenium (the test extra); without them the module is skipped.
"""
import json
import re
import shutil
import tempfile
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

from tinygrad_rnn import viz

from explore_helpers import HOSTILE, hostile_run, needs_graphviz, node_named, recorded, sequence_run

webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium (the test extra)")
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [needs_graphviz, pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless Chromium is not installed: apt-get install chromium chromium-driver "
           "(or sh scripts/install_chromium.sh as root)")]
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.TemporaryDirectory()
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1400,1000", f"--user-data-dir={profile.name}",
                     "--proxy-server=http://127.0.0.1:9"):  # any request that slips out goes nowhere
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        profile.cleanup()


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """{name: (path, data)} of the pages the tests open."""
    folder = tmp_path_factory.mktemp("pages")
    rnn = recorded("rnn", steps=4)
    lstm = recorded("lstm", steps=3)
    later = recorded("lstm", steps=3, seed=5)
    made = {
        "rnn": viz.explore(rnn[0], rnn[1], tokens=list("abcd")),
        "compare": viz.explore([("before", {"tanh RNN": rnn[:2], "LSTM": lstm[:2]}),
                                ("after", {"tanh RNN": rnn[:2], "LSTM": later[:2]})]),
        "hostile": viz.explore({HOSTILE: hostile_run()}),
    }
    found = {name: (page.save(folder / f"{name}.html"), page, rnn if name == "rnn" else None)
             for name, page in made.items()}
    made = {name: viz.explore({kind: run[:2] for kind, run in runs.items()}, tokens=TEXT[name],
                              connectivity={kind: run[2] for kind, run in runs.items()},
                              predictions={kind: run[3] for kind, run in runs.items()}, vocab=VOCAB)
            for name, runs in SEQUENCES.items()}
    return {**found, **{name: (page.save(folder / f"{name}.html"), page, SEQUENCES[name])
                        for name, page in made.items()}}


VOCAB = ["a", " ", "(", ")", HOSTILE]  # as many as the top predictions shown: all are shown
TEXT = {"sequence": list("a (a  a) (a"), "hostile tokens": [HOSTILE, "a", HOSTILE, "(", ")"]}
SEQUENCES = {name: {kind: sequence_run(kind, tokens, VOCAB, seed)
                    for seed, kind in enumerate(("rnn", "lstm", "gru"))} for name, tokens in TEXT.items()}


def open_page(driver, path):
    driver.get_log("browser"), driver.get_log("performance")  # forget what came before
    driver.get(path.as_uri())
    assert driver.find_element("css selector", "body").get_attribute("data-ready") == "true"


def assert_clean(driver):
    """No console error, and no request from the page but file:// and data: (the browser's own
    chrome:// pages, loaded as it starts, are not the page's)."""
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    sent = [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]
    urls = [m["params"]["request"]["url"] for m in sent if m["method"] == "Network.requestWillBeSent"
            and m["params"].get("documentURL", "").startswith("file://")]
    assert [url for url in urls if not url.startswith(("file://", "data:"))] == []


def state(driver):
    return driver.execute_script("return explorer.state()")


def fills(driver):
    """{node key: fill of its shape} as the page shows them now (not the lanes' points)."""
    return driver.execute_script("""
        const out = {};
        for (const g of document.querySelectorAll('#graph g.node:not(.lane)')) {
          const shape = Array.from(g.querySelectorAll('polygon, path')).find(
            s => s.getAttribute('fill') && s.getAttribute('fill') !== 'none');
          out[g.dataset.key] = shape.getAttribute('fill');
        }
        return out;""")


# ----------------------------------------------------------------- tests

def test_clicking_a_named_node_shows_the_recordings_numbers(browser, pages):
    path, _, (loss, rec, _) = pages["rnn"]
    open_page(browser, path)
    key, _ = node_named(json.loads(browser.find_element("id", "explorer-data")
                                   .get_attribute("textContent"))["snapshots"][0]["runs"][0], "h", 2)
    browser.find_element("css selector", f'#graph g.node[data-key="{key}"]').click()
    value = rec.values("h")[2]
    shown = {field: browser.find_element("css selector", f'#panel [data-field="{field}"]').text
             for field in ("name", "op", "min", "mean", "max", "grad_norm")}
    assert shown["name"] == "h" and shown["op"] == "tanh"
    assert [float(shown[k]) for k in ("min", "mean", "max")] == pytest.approx(
        [value.min(), value.mean(), value.max()], rel=5e-3)  # shown to 3 digits
    assert float(shown["grad_norm"]) == pytest.approx(rec.grad_norms("h")[2], rel=5e-3)
    selected = state(browser)["selected"]
    assert selected["scope"] == "rnn/l0/t=2" and selected["max"] == pytest.approx(value.max(), rel=1e-6)
    assert_clean(browser)


def test_the_scrubber_lights_more_nodes_forward_and_backward(browser, pages):
    path, _, _ = pages["rnn"]
    open_page(browser, path)
    lit = []
    for phase, times in (("forward", [0, 1, 2, 3]), ("backward", [3, 2, 1, 0])):
        for t in times:
            browser.execute_script("explorer.setStep(arguments[0], arguments[1])", phase, t)
            lit.append(state(browser)["lit"])
    forward, backward = lit[:4], lit[4:]
    assert forward == sorted(forward) and forward[0] < forward[-1]
    assert backward == sorted(backward) and backward[0] < backward[-1]
    browser.execute_script("explorer.setStep('forward', 3)")
    browser.find_element("id", "step-back").click()
    assert (state(browser)["phase"], state(browser)["t"]) == ("forward", 2)
    browser.find_element("css selector", "body").send_keys("\ue014")  # the right arrow key
    assert (state(browser)["phase"], state(browser)["t"]) == ("forward", 3)
    browser.find_element("css selector", "body").send_keys("\ue014")
    assert (state(browser)["phase"], state(browser)["t"]) == ("backward", 3)
    assert_clean(browser)


def test_backward_to_the_end_colours_nodes_as_the_static_grads_picture(browser, pages, tmp_path):
    path, _, (loss, _, _) = pages["rnn"]
    static = viz.render(loss, path=str(tmp_path / "static.svg"), grads=True)
    expected = {}
    for g in ElementTree.parse(static).iter(SVG + "g"):
        if "node" in (g.get("class") or "").split():
            shape = [s for s in g.iter()
                     if s.tag in (SVG + "polygon", SVG + "path") and s.get("fill") != "none"]
            expected[g.find(SVG + "title").text] = shape[0].get("fill")
    open_page(browser, path)
    browser.execute_script("explorer.setStep('backward', 0)")
    assert fills(browser) == expected
    browser.execute_script("explorer.setStep('forward', 3)")
    assert fills(browser) != expected  # forward shows the kinds' colours, not gradients
    assert_clean(browser)


def test_switching_runs_and_snapshots(browser, pages):
    path, _, _ = pages["compare"]
    open_page(browser, path)
    assert (state(browser)["run"], state(browser)["snapshot"]) == ("tanh RNN", 0)
    before = fills(browser)
    tabs = browser.find_elements("css selector", "#runs button")
    assert [tab.text for tab in tabs] == ["tanh RNN", "LSTM"]
    tabs[1].click()
    assert state(browser)["run"] == "LSTM"
    assert fills(browser).keys() != before.keys()  # another graph is drawn
    browser.execute_script("explorer.setStep('backward', 0)")
    browser.execute_script("explorer.select('f', 1)")
    norm_before = state(browser)["selected"]["grad_norm"]
    browser.execute_script("explorer.setSnapshot(1)")
    after = state(browser)
    assert (after["run"], after["snapshot"], after["phase"], after["t"]) == ("LSTM", 1, "backward", 0)
    assert after["selected"]["name"] == "f" and after["selected"]["grad_norm"] != norm_before
    assert browser.find_element("id", "snapshot-label").text == "after"
    browser.execute_script("explorer.setRun('tanh RNN')")
    assert state(browser)["run"] == "tanh RNN" and state(browser)["selected"] is None
    assert_clean(browser)


def test_the_gate_panel_shows_a_gate_of_the_lstm_and_says_why_the_rnn_has_none(browser, pages):
    path, _, _ = pages["compare"]
    open_page(browser, path)
    panel = browser.find_element("id", "panel-gates")
    assert panel.find_elements("css selector", "select") == []
    assert "a plain RNN has none" in panel.find_element("css selector", "p.hint").text
    browser.execute_script("explorer.setRun('LSTM')")
    panel = browser.find_element("id", "panel-gates")
    assert panel.find_elements("css selector", "p.hint") == []
    assert panel.find_element("css selector", "select option").text.startswith("f")
    assert_clean(browser)


def test_wheel_zooms_drag_pans_and_play_moves_the_scrubber(browser, pages):
    from selenium.webdriver import ActionChains
    from selenium.webdriver.support.wait import WebDriverWait

    path, _, _ = pages["rnn"]
    open_page(browser, path)

    def view():
        box = browser.execute_script("return document.querySelector('#graph svg').getAttribute('viewBox')")
        return [float(v) for v in box.split()]

    whole = view()
    browser.execute_script("""document.getElementById('graph').dispatchEvent(new WheelEvent('wheel',
        {deltaY: -400, clientX: 300, clientY: 300, bubbles: true, cancelable: true}))""")
    zoomed = view()
    assert zoomed[2] < whole[2] and zoomed[3] < whole[3]
    pane = browser.find_element("id", "graph")
    ActionChains(browser).move_to_element(pane).click_and_hold().move_by_offset(120, 0).release().perform()
    assert view()[0] < zoomed[0] and view()[2] == pytest.approx(zoomed[2])  # moved left, same zoom
    browser.find_element("id", "fit").click()
    assert view() == pytest.approx(whole)
    browser.find_element("id", "play").click()
    WebDriverWait(browser, 10).until(lambda driver: state(driver)["t"] >= 2)
    browser.find_element("id", "play").click()  # pause
    paused = state(browser)
    assert paused["phase"] == "forward" and browser.find_element("id", "play").text == "▶ play"
    assert_clean(browser)


def hovered_steps(driver):
    """The times of the step boxes the graph shows as hovered."""
    return driver.execute_script("""
        const run = JSON.parse(document.getElementById('explorer-data').textContent).snapshots[0].runs[0];
        return Array.from(document.querySelectorAll('#graph g.cluster.hovered'),
                          g => run.boxes[g.querySelector('title').textContent]);""")


def test_hovering_a_step_anywhere_highlights_it_everywhere(browser, pages):
    from selenium.webdriver import ActionChains

    path, _, _ = pages["rnn"]
    open_page(browser, path)
    assert hovered_steps(browser) == []
    column = browser.find_element("css selector", '#panel-norms rect.column[data-t="2"]')
    ActionChains(browser).move_to_element(column).perform()
    assert hovered_steps(browser) == [[2]]
    assert browser.find_elements("css selector", "#time-panels rect.column.hovered") != []
    token = browser.find_element("css selector", '#tokens [data-t="1"]')
    ActionChains(browser).move_to_element(token).perform()
    assert hovered_steps(browser) == [[1]]
    assert [c.get_attribute("data-t") for c in browser.find_elements(
        "css selector", "#panel-weights rect.column.hovered")] == ["1"]
    assert_clean(browser)


def test_tokens_take_the_colour_of_a_chosen_units_value(browser, pages):
    from selenium.webdriver.support.select import Select

    path, _, (_, rec, _) = pages["rnn"]
    open_page(browser, path)
    Select(browser.find_element("id", "colour-by")).select_by_visible_text("a unit of h, rnn/l0")
    Select(browser.find_element("id", "unit")).select_by_value("1")
    backgrounds = [token.value_of_css_property("background-color")
                   for token in browser.find_elements("css selector", "#tokens .token")]
    colours = [re.match(r"rgba?\((\d+), (\d+), (\d+)", background).groups() for background in backgrounds]
    # blue below 0, red above, as the heatmaps
    assert colours == [("59", "76", "192") if v < 0 else ("180", "4", "38") for v in rec.values("h")[:, 0, 1]]
    assert_clean(browser)


def test_a_hostile_name_stays_text(browser, pages):
    path, _, _ = pages["hostile"]
    open_page(browser, path)
    browser.execute_script("explorer.select(arguments[0], 1)", HOSTILE)
    assert browser.find_element("css selector", '#panel [data-field="name"]').text == HOSTILE
    assert re.fullmatch(r"<img src=x onerror=alert\(2\)>/t=1",
                        browser.find_element("css selector", '#panel [data-field="scope"]').text)
    assert browser.execute_script("return document.querySelectorAll('script, img').length") == 2
    assert browser.execute_script("return document.querySelectorAll('#graph text').length") > 0
    texts = browser.execute_script(
        "return Array.from(document.querySelectorAll('#graph text'), t => t.textContent)")
    assert any(HOSTILE in text for text in texts)  # drawn as a label
    with pytest.raises(Exception, match="no such alert"):
        browser.switch_to.alert.text
    assert_clean(browser)


# ----------------------------------------------------------------- the sequence view

def token_colours(driver):
    """{run name: [(r, g, b, alpha) of each token]} of the lines of text the page shows."""
    found = driver.execute_script("""
        const out = {};
        for (const line of document.querySelectorAll('#lines .line')) {
          if (!line.hidden) out[line.dataset.run] = Array.from(line.querySelectorAll('.token'),
            span => getComputedStyle(span).backgroundColor);
        }
        return out;""")
    return {name: [colour(background) for background in backgrounds] for name, backgrounds in found.items()}


def colour(background):
    r, g, b, alpha = re.fullmatch(r"rgba?\((\d+), (\d+), (\d+)(?:, ([\d.e-]+))?\)", background).groups()
    return int(r), int(g), int(b), 1.0 if alpha is None else float(alpha)


def hover_token(driver, t, run="lstm"):
    from selenium.webdriver import ActionChains

    span = driver.find_element("css selector", f'#lines .line[data-run="{run}"] .token[data-t="{t}"]')
    ActionChains(driver).move_to_element(span).perform()


def test_hovering_a_token_colours_every_run_by_its_connectivity(browser, pages):
    path, _, runs = pages["sequence"]
    open_page(browser, path)
    assert [label.text for label in browser.find_elements("css selector", "#lines .line-label")] == [
        "rnn", "lstm", "gru"]  # side by side
    for t in (3, 7):
        hover_token(browser, t)
        shown = token_colours(browser)
        for name, (_, _, connectivity, _) in runs.items():
            row = connectivity[0, t]
            assert [rgb[:3] for rgb in shown[name]] == [(255, 127, 14)] * len(row)
            # the one-directional runs give exact zeros after t; alpha is kept to 1/255
            assert [rgb[3] for rgb in shown[name]] == pytest.approx(row / row.max(), abs=2 / 255)
            assert all(rgb[3] == 0 for rgb in shown[name][t + 1:])
    assert_clean(browser)


def test_hovering_a_token_shows_each_runs_top_predictions(browser, pages):
    path, _, runs = pages["sequence"]
    open_page(browser, path)
    hover_token(browser, 5)
    for name, (_, _, _, p) in runs.items():
        line = browser.find_element("css selector", f'#predictions .guesses[data-run="{name}"]')
        assert line.find_element("css selector", ".label").text == f"{name}, next after t = 5:"
        guesses = line.find_elements("css selector", ".guess")
        best = np.argsort(-p[5], kind="stable")[:5]
        assert [g.find_element("css selector", ".guess-token").text for g in guesses] == [
            VOCAB[k].replace(" ", "\u2423") for k in best]  # a predicted space shows as a sign
        assert [float(g.text.split()[-1]) for g in guesses] == pytest.approx(p[5, best], rel=5e-3)
    assert_clean(browser)


def test_a_chosen_unit_colours_the_current_runs_text_by_its_values(browser, pages):
    from selenium.webdriver.support.select import Select

    path, _, runs = pages["sequence"]
    open_page(browser, path)
    browser.find_element("css selector", '#lines .line[data-run="gru"] .line-label').click()
    assert state(browser)["run"] == "gru"
    Select(browser.find_element("id", "colour-by")).select_by_visible_text("a unit of h, gru/l0")
    Select(browser.find_element("id", "unit")).select_by_value("2")
    shown = token_colours(browser)
    values = runs["gru"][1].values("h")[:, 0, 2]
    assert list(shown) == ["gru"]  # a unit belongs to one run: the others' lines are hidden
    assert [rgb[:3] for rgb in shown["gru"]] == [(59, 76, 192) if v < 0 else (180, 4, 38) for v in values]
    assert [rgb[3] for rgb in shown["gru"]] == pytest.approx(np.abs(values) / np.abs(values).max(),
                                                            abs=2 / 255)
    assert_clean(browser)


def test_hostile_tokens_stay_text(browser, pages):
    path, _, _ = pages["hostile tokens"]
    open_page(browser, path)
    hover_token(browser, 2)
    line = browser.find_element("css selector", '#lines .line[data-run="rnn"]')
    texts = [span.text for span in line.find_elements("css selector", ".token")]
    assert texts == TEXT["hostile tokens"]
    assert HOSTILE in [g.text for g in browser.find_elements("css selector", "#predictions .guess-token")]
    assert browser.execute_script("return document.querySelectorAll('script, img').length") == 2
    with pytest.raises(Exception, match="no such alert"):
        browser.switch_to.alert.text
    assert_clean(browser)


def test_with_an_annotation_the_page_opens_on_the_unit_that_matches_it_best(browser, pages, tmp_path):
    from selenium.webdriver.support.select import Select

    loss, rec, _, _ = SEQUENCES["sequence"]["lstm"]
    depth = rec.values("c")[:, 0, 2] + 0.01 * np.arange(len(TEXT["sequence"]))  # c's unit 2, nearly
    path = viz.explore(loss, rec, tokens=TEXT["sequence"], annotation=depth).save(tmp_path / "annotated.html")
    open_page(browser, path)
    colour_by = Select(browser.find_element("id", "colour-by")).first_selected_option
    assert colour_by.text == "a unit of c, lstm/l0"
    assert Select(browser.find_element("id", "unit")).first_selected_option.text.startswith("unit 2 (r = ")
    assert_clean(browser)
