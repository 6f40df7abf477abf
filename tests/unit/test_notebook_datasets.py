"""The notebook side of datasets (``aitestbed.datasets`` and the browser widget) against a
real portal app over HTTP: the embedded default's catalog with its demo data written at
start-up, plus one NFS dataset the portal cannot read (the session's mount is read instead).

Users of the embedded default: alice (acme-vision: digits needs her acceptance), bob
(acme-vision and uni-nlp), carol (no project: only the public iris)."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import threading

import ipywidgets
import pytest
import uvicorn
import yaml
from aitestbed.notebook import datasets
from aitestbed.notebook.client import PortalClient
from aitestbed.notebook.dataset_browser import DatasetBrowser, details_html, load_snippet
from aitestbed.portal.app import create_app
from aitestbed.portal.service import prepare_database
from aitestbed.settings import load_settings

from tests.conftest import EXAMPLE_SETTINGS
from tests.harness import free_port, wait_until
from tests.jobs_support import PREFIX, TableIdentity, write_settings

REMOTE = {
    "slug": "remote-scans",
    "title": "Remote <b>scans</b>",
    "description": "On a file server the portal cannot read.",
    "tags": ["tabular"],
    "license": "CC0-1.0",
    "visibility": "public",
    "storage": {"kind": "nfs", "server": "files.example", "path": "/export/scans"},
}


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    base = tmp_path_factory.mktemp("nb-datasets")
    doc = yaml.safe_load(EXAMPLE_SETTINGS.read_text())
    doc["site"]["state_dir"] = str(base / "state")
    doc["datasets"].append(REMOTE)
    # dave: a member of acme-vision whom only the command-line test uses.
    doc["projects"][0]["members"].append({"user": "dave"})
    settings = load_settings(write_settings(base / "settings.yaml", doc))
    engine = prepare_database(settings)
    app = create_app(
        engine=engine,
        identity=TableIdentity(["alice", "bob", "carol", "dave"]),
        prefix=PREFIX,
        state_dir=settings.site.state_dir,
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=30, what="portal app")
    yield f"http://127.0.0.1:{port}{PREFIX}", base / "state" / "datasets"
    server.should_exit = True
    thread.join(timeout=30)
    engine.dispose()


@pytest.fixture
def url(portal):
    return portal[0]


@pytest.fixture
def mounts(tmp_path, monkeypatch):
    """This session's dataset folder (empty: nothing mounted)."""
    folder = tmp_path / "datasets"
    folder.mkdir()
    monkeypatch.setenv("AITESTBED_DATASETS_DIR", str(folder))
    return folder


def client(url: str, name: str) -> PortalClient:
    return PortalClient(url, f"t-{name}")


def test_in_a_session_every_listing_shows_the_sessions_own_path(url, monkeypatch, tmp_path):
    """The embedded default mounts at ~/datasets, a pod at /datasets: what the list, the
    details and the browser show is where this session has it, the same as path()."""
    monkeypatch.setenv("AITESTBED_DATASETS_DIR", str(tmp_path / "datasets"))
    (tmp_path / "datasets" / "iris").mkdir(parents=True)
    bob = client(url, "bob")
    listed = {d.slug: d for d in datasets.list(client=bob)}
    assert listed["digits"].path == str(tmp_path / "datasets" / "digits")
    assert datasets.info("iris", client=bob).path == str(datasets.path("iris", client=bob))


def test_list_search_tags_and_info(url, monkeypatch):
    monkeypatch.delenv("AITESTBED_DATASETS_DIR", raising=False)
    bob = client(url, "bob")
    listed = {d.slug: d for d in datasets.list(client=bob)}
    assert sorted(listed) == ["digits", "iris", "remote-scans", "wine"]
    assert listed["iris"].usable and listed["wine"].usable
    digits = listed["digits"]
    assert not digits.usable and digits.access.code == "terms-not-accepted"
    assert digits.terms_version == "1" and digits.path == "/datasets/digits"
    assert isinstance(digits.tags, tuple) and "images" in digits.tags
    assert listed["iris"].file_count == 3 and listed["iris"].size_bytes > 0  # demo data measured
    assert [d.slug for d in datasets.search("handwritten", client=bob)] == ["digits"]
    assert [d.slug for d in datasets.list(limit=2, client=bob)] == ["digits", "iris"]
    first = datasets.page("classification", limit=1, offset=1, client=bob)
    assert first.total == 3 and [d.slug for d in first.items] == ["iris"]
    assert [d.slug for d in datasets.list(tag="chemistry", client=bob)] == ["wine"]
    assert {t.tag: t.count for t in datasets.tags(client=bob)}["classification"] == 3
    carol = [d.slug for d in datasets.list(client=client(url, "carol"))]
    assert carol == ["iris", "remote-scans"]
    info = datasets.info("digits", client=bob)
    assert isinstance(info, datasets.DatasetInfo)
    assert "identify the writers" in info.terms_text and info.accepted_at is None
    assert info.license == "CC-BY-4.0" and info.storage_kind == "local"


def test_errors_carry_the_portals_message(url):
    carol = client(url, "carol")
    with pytest.raises(datasets.DatasetError, match="no dataset 'wine' that you can see") as hidden:
        datasets.info("wine", client=carol)
    assert hidden.value.status == 404
    alice = client(url, "alice")
    with pytest.raises(datasets.DatasetError) as refused:
        datasets.files("digits", client=alice)
    assert refused.value.status == 403 and refused.value.code == "terms-not-accepted"
    assert not str(refused.value).startswith("The portal refused")  # the portal's own words
    with pytest.raises(datasets.DatasetError, match="not a dataset name"):
        datasets.info("..", client=alice)
    with pytest.raises(datasets.DatasetError, match="cannot be reached"):
        datasets.list(client=PortalClient(f"http://127.0.0.1:{free_port()}/", "t", timeout=2))


def test_path_says_why_a_dataset_is_not_mounted(url, mounts):
    alice = client(url, "alice")
    (mounts / "iris").mkdir()
    assert datasets.path("iris", client=alice) == mounts / "iris"
    with pytest.raises(datasets.DatasetError, match="no dataset 'wine' you can see") as unknown:
        datasets.path("wine", client=alice)
    assert unknown.value.code == "unknown"
    with pytest.raises(datasets.DatasetError) as terms:
        datasets.path("digits", client=alice)
    assert terms.value.code == "terms-not-accepted"
    assert "accept_terms('digits')" in str(terms.value) and "restart your session" in str(
        terms.value
    )
    with pytest.raises(datasets.DatasetError, match="Restart your session") as usable:
        datasets.path("remote-scans", client=alice)
    assert usable.value.code == "ok"
    with pytest.raises(datasets.DatasetError, match=r"no dataset '\.\./iris'"):
        datasets.path("../iris", client=alice)


def test_path_explains_a_dataset_one_is_not_entitled_to(tmp_path):
    refused = datasets.DatasetInfo(
        slug="wine",
        title="Wine",
        access=datasets.Access(False, "not-entitled", "granted to uni-nlp only"),
    )
    message = datasets.why_not_mounted("wine", tmp_path / "wine", refused)
    assert message.startswith(f"wine is not mounted at {tmp_path / 'wine'}: you are not entitled")
    assert "(granted to uni-nlp only)" in message and "Ask an operator" in message


def test_accept_terms_shows_them_and_records_the_version(url, capsys):
    bob = client(url, "bob")
    accepted = datasets.accept_terms("digits", client=bob)
    out = capsys.readouterr().out
    assert "Terms of Handwritten digits (digits), version 1" in out
    assert "identify the writers" in out and "Restart your session" in out
    assert accepted.slug == "digits" and accepted.terms_version == "1"
    info = datasets.info("digits", client=bob)
    assert info.terms_accepted and info.usable and info.accepted_at is not None
    with pytest.raises(datasets.DatasetError, match="at version 1, not 0") as stale:
        datasets.accept_terms("digits", "0", client=bob)
    assert stale.value.status == 409 and stale.value.code == "terms-changed"
    with pytest.raises(datasets.DatasetError, match="no terms"):
        datasets.accept_terms("iris", client=bob)


def test_files_and_previews_through_the_portal(url):
    bob = client(url, "bob")
    root = datasets.files("iris", client=bob)
    assert [(e.name, e.type) for e in root] == [
        ("README.md", "file"),
        ("iris.csv", "file"),
        ("iris.parquet", "file"),
    ]
    table = datasets.preview("iris", "iris.csv", rows=3, client=bob)
    assert table.kind == "table" and table.columns[0] == "sepal length (cm)"
    assert len(table.rows) == 3 and table.total_rows == 150 and table.source == "portal"
    parquet = datasets.preview("iris", "iris.parquet", rows=2, client=bob)
    assert parquet.columns == table.columns and parquet.total_rows == 150
    assert "<caption>first 3 of 150 rows</caption>" in table.to_html()
    datasets.accept_terms("digits", quiet=True, client=bob)
    image = datasets.preview("digits", "images/3/0003.png", client=bob)
    assert image.kind == "image" and image.image_bytes().startswith(b"\x89PNG")
    assert [e.type for e in datasets.files("digits", "images", client=bob)] == ["dir"] * 10
    with pytest.raises(datasets.DatasetError) as outside:
        datasets.preview("iris", "../digits/digits.csv", client=bob)
    assert outside.value.status == 400


def test_unreadable_storage_falls_back_to_the_sessions_mount(url, mounts):
    carol = client(url, "carol")
    with pytest.raises(datasets.DatasetError) as unreadable:
        datasets.files("remote-scans", client=carol)
    assert unreadable.value.status == 409 and unreadable.value.code == "storage-not-readable"
    mounted = mounts / "remote-scans"
    (mounted / "2026").mkdir(parents=True)
    (mounted / "scans.csv").write_text("id,label\n1,<script>x</script>\n2,b\n")
    (mounted / "2026" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nrest")
    (mounts / "secret.txt").write_text("not part of the dataset")
    listing = datasets.files("remote-scans", client=carol)
    assert [(e.name, e.type) for e in listing] == [("2026", "dir"), ("scans.csv", "file")]
    shown = datasets.preview("remote-scans", "scans.csv", client=carol)
    assert shown.source == "mount" and shown.rows == (("1", "<script>x</script>"), ("2", "b"))
    assert "&lt;script&gt;" in shown.to_html() and "<script>" not in shown.to_html()
    image = datasets.preview("remote-scans", "2026/a.png", client=carol)
    assert image.kind == "image" and base64.b64decode(image.data_base64).endswith(b"rest")
    (mounted / "link.txt").symlink_to(mounts / "secret.txt")
    (mounted / "table.tsv").write_text("a\tb\n1\t2\n")
    assert [e.name for e in datasets.files("remote-scans", client=carol)] == [
        "2026",
        "scans.csv",
        "table.tsv",
    ]  # the link that leads out is left out, as the portal does
    assert datasets.preview("remote-scans", "table.tsv", client=carol).rows == (("1", "2"),)
    with pytest.raises(datasets.DatasetError, match="outside the dataset") as outside:
        datasets.preview("remote-scans", "link.txt", client=carol)
    assert outside.value.status == 400 and outside.value.code == "bad-path"


# -- the browser widget, driven without a browser -------------------------------------------


def _file_labels(browser: DatasetBrowser) -> list[str]:
    return [label for label, _value in browser.file_list.options]


def _pick_file(browser: DatasetBrowser, label: str) -> None:
    browser.file_list.value = dict(browser.file_list.options)[label]


def test_browser_search_tag_filter_and_details(url):
    browser = DatasetBrowser(client(url, "alice"))
    assert [v for _l, v in browser.results.options] == ["digits", "iris", "remote-scans"]
    assert ("images (1)", "images") in browser.tag_filter.options
    browser.search_box.value = "flowers"
    assert [v for _l, v in browser.results.options] == ["iris"]
    browser.search_box.value = ""
    browser.tag_filter.value = "personal-data"
    assert [label for label, _v in browser.results.options] == [
        "Handwritten digits (digits) - terms to accept"
    ]
    browser.tag_filter.value = ""
    browser.search_box.value = "no such thing"
    assert browser.results.options == () and "No dataset matches" in browser.status.value
    browser.search_box.value = ""
    browser.results.value = "iris"
    assert "Iris flowers" in browser.details.value and "BSD-3-Clause" in browser.details.value
    assert browser.accept_button.layout.display == "none"  # no terms
    assert _file_labels(browser)[0].startswith("README.md (")
    # the first table is previewed right away, with the code to load it
    (table,) = browser.preview_area.children
    assert "<th>sepal length (cm)</th>" in table.value and "setosa" in table.value
    assert 'pd.read_csv(aitestbed.datasets.path("iris") / "iris.csv")' in browser.code.value
    assert browser.code.disabled and "aitestbed-copy" in browser.copy_button.value


class CountingClient(PortalClient):
    """Counts the catalog listings it asks for (each one is an audit entry at the portal)."""

    listings = 0

    def datasets(self, *args, **kwargs):
        self.listings += 1
        return super().datasets(*args, **kwargs)


def test_one_widget_action_is_one_listing(url):
    counting = CountingClient(url, "t-bob")
    browser = DatasetBrowser(counting)
    assert counting.listings == 1 and ("images (1)", "images") in browser.tag_filter.options
    browser.search_box.value = "flowers"
    assert counting.listings == 2
    browser.tag_filter.value = "images"
    assert counting.listings == 3
    browser.search_button.click()
    assert counting.listings == 4
    browser.search_box.value = ""
    browser.tag_filter.value = ""
    assert counting.listings == 6
    # The tag counts stay those of the whole catalog while a search narrows the list.
    assert ("images (1)", "images") in browser.tag_filter.options


def test_browser_accept_terms_then_preview_table_and_thumbnails(url):
    alice = client(url, "alice")
    browser = DatasetBrowser(alice)
    browser.search_box.value = "digits"
    browser.results.value = "digits"
    assert "identify the writers" in browser.details.value
    assert "version 1, not accepted yet" in browser.details.value
    assert browser.accept_button.layout.display is None
    assert browser.file_list.options == () and "Accept the terms" in browser.status.value
    # the first press only asks; Cancel records nothing
    browser.accept_button.click()
    assert browser.confirm_box.layout.display is None and "version 1" in browser.confirm_text.value
    browser.cancel_button.click()
    assert browser.confirm_box.layout.display == "none"
    assert not datasets.info("digits", client=alice).terms_accepted
    browser.accept_button.click()
    browser.confirm_button.click()
    assert datasets.info("digits", client=alice).terms_accepted
    assert "You accepted version 1" in browser.status.value
    assert browser.accept_button.layout.display == "none"
    assert re.search(r"version 1, accepted 20\d\d-\d\d-\d\d \d\d:\d\d UTC", browser.details.value)
    assert ("Handwritten digits (digits)", "digits") in browser.results.options
    assert _file_labels(browser)[0] == "images/"
    (table,) = browser.preview_area.children
    assert "<th>pixel_0_0</th>" in table.value and "first 20 of 1797 rows" in table.value
    # into images/, then images/7: thumbnails of the first images
    _pick_file(browser, "images/")
    assert _file_labels(browser)[:3] == ["\u2191 ..", "0/", "1/"]
    assert browser.preview_area.children == ()  # a folder of folders: nothing to preview
    _pick_file(browser, "7/")
    assert 'path("digits") / "images/7"\nsorted(' in browser.code.value
    tiles = browser.preview_area.children
    assert len(tiles) == 8
    image = tiles[0].children[0]
    assert isinstance(image, ipywidgets.Image) and bytes(image.value).startswith(b"\x89PNG")
    assert image.format == "png"
    _pick_file(browser, next(label for label in _file_labels(browser) if ".png (" in label))
    assert 'Image(filename=aitestbed.datasets.path("digits") / "images/7/' in browser.code.value
    _pick_file(browser, "\u2191 ..")
    assert browser.folder == "images"


def test_browser_escapes_what_the_portal_says_and_reads_the_mount(url, mounts):
    mounted = mounts / "remote-scans"
    mounted.mkdir()
    (mounted / "scans.csv").write_text('id,"<img src=x onerror=alert(1)>"\n1,<b>bold</b>\n')
    browser = DatasetBrowser(client(url, "carol"))
    browser.results.value = "remote-scans"
    assert "Remote &lt;b&gt;scans&lt;/b&gt;" in browser.details.value
    assert "(read from this session's mount)" in browser.status.value
    (table,) = browser.preview_area.children
    assert "&lt;img src=x onerror=alert(1)&gt;" in table.value and "<img" not in table.value
    assert "&lt;b&gt;bold&lt;/b&gt;" in table.value


def test_browser_says_when_storage_is_neither_readable_nor_mounted(url, mounts):
    browser = DatasetBrowser(client(url, "carol"))
    browser.results.value = "remote-scans"
    assert "cannot read nfs storage" in browser.status.value
    assert f"not mounted in this session at {mounts / 'remote-scans'}" in browser.status.value
    assert browser.file_list.options == ()


def test_browser_says_when_the_list_is_cut_short(url, monkeypatch):
    from aitestbed.notebook import dataset_browser

    monkeypatch.setattr(dataset_browser, "MAX_RESULTS", 2)
    browser = DatasetBrowser(client(url, "bob"))
    assert len(browser.results.options) == 2
    assert "The first 2 of 4 datasets: search to narrow." in browser.status.value


def test_browser_reports_an_unreachable_portal():
    browser = DatasetBrowser(PortalClient(f"http://127.0.0.1:{free_port()}/", "t", timeout=2))
    assert "cannot be reached" in browser.status.value and browser.results.options == ()


def test_details_and_snippets_are_escaped_and_valid_python():
    info = datasets.DatasetInfo(
        slug="x",
        title="<script>alert(1)</script>",
        license="<i>MIT</i>",
        terms_version="2",
        terms_text="Be <nice>",
        access=datasets.Access(False, "terms-not-accepted", "Accept <these> terms"),
    )
    shown = details_html(info)
    assert "<script>" not in shown and "&lt;script&gt;" in shown
    assert "&lt;i&gt;MIT&lt;/i&gt;" in shown and "Be &lt;nice&gt;" in shown
    assert "Accept &lt;these&gt; terms" in shown
    for path in ("a.csv", "b.parquet", 'we"ird\\.png', "notes.md", "", "t.tsv"):
        compile(load_snippet("x", path), "<snippet>", "exec")  # always valid Python
    assert load_snippet("x", 'we"ird\\.png').count('"we\\"ird\\\\.png"') == 1
    assert load_snippet("x", "images/3", folder=True).endswith(
        'folder = aitestbed.datasets.path("x") / "images/3"\n'
        "sorted(p.name for p in folder.iterdir())"
    )
    assert "read_text()" in load_snippet("x", "notes.md")


def test_details_say_when_the_portal_is_still_measuring_a_dataset():
    measuring = datasets.DatasetInfo(slug="x", title="X", size_state="measuring")
    assert "<td>Size</td><td>being measured, look again in a minute</td>" in details_html(measuring)
    measured = datasets.DatasetInfo(
        slug="x", title="X", size_state="measured", size_bytes=2048, file_count=2
    )
    assert "<td>Size</td><td>2.0 KiB, 2 files</td>" in details_html(measured)


def test_datasets_module_imports_no_hub_side_package():
    code = (
        "import sys, aitestbed; aitestbed.datasets; import aitestbed.notebook.dataset_browser;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'jupyterhub', 'sqlalchemy', 'fastapi', 'alembic', 'uvicorn', 'yaml', 'jsonschema',"
        " 'sklearn', 'pyarrow'} "
        "or m.startswith(('aitestbed.hub', 'aitestbed.portal', 'aitestbed.settings')));"
        "print(bad)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_the_command_line_lists_shows_and_accepts(url, mounts, monkeypatch, capsys):
    from aitestbed.notebook import cli

    monkeypatch.setenv("AITESTBED_PORTAL_URL", url)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "t-carol")
    assert cli.main(["dataset", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("DATASET")
    assert [line.split()[0] for line in lines[1:]] == ["iris", "remote-scans"]
    assert cli.main(["dataset", "list", "--tag", "botany", "fisher"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["iris"]
    assert cli.main(["dataset", "files", "iris"]) == 0
    assert "iris.csv" in capsys.readouterr().out
    # Not mounted in this (test) session: the path command says why and fails.
    assert cli.main(["dataset", "path", "iris"]) == 2
    assert "aitestbed:" in capsys.readouterr().err
    (mounts / "iris").mkdir()
    assert cli.main(["dataset", "path", "iris"]) == 0
    assert capsys.readouterr().out.strip() == str(mounts / "iris")
    assert cli.main(["dataset", "info", "wine"]) == 2  # not carol's
    assert "no dataset 'wine'" in capsys.readouterr().err

    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "t-dave")
    assert cli.main(["dataset", "info", "digits"]) == 0
    shown = capsys.readouterr().out
    assert "Terms, version 1" in shown and "identify the writers" in shown
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    assert cli.main(["dataset", "accept", "digits"]) == 1
    assert "Not accepted" in capsys.readouterr().out
    assert not datasets.info("digits", client=client(url, "dave")).terms_accepted
    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    assert cli.main(["dataset", "accept", "digits"]) == 0
    assert "Accepted version 1" in capsys.readouterr().out
    assert datasets.info("digits", client=client(url, "dave")).terms_accepted
