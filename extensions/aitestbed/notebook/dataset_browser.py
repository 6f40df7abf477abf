"""The dataset browser widget: ``aitestbed.datasets.browser()``.

Search and filter the catalog, read a dataset's license and terms, accept the terms, look
through its files with previews (tables, images, text), and copy the code that loads it.
Everything goes through :mod:`aitestbed.notebook.datasets`, so the widget shows what the API
says and nothing more.
"""

from __future__ import annotations

import html
import json

import ipywidgets as widgets

from aitestbed.notebook import datasets
from aitestbed.notebook.client import PortalClient

THUMBNAILS = 8
MAX_RESULTS = 200  # a longer list is no help: search to narrow it
PREVIEW_ROWS = 20
UP = "\u2191 .."
# Copies the snippet's textarea (found next to the button) to the clipboard: the
# asynchronous clipboard API where the page is a secure context, else a hidden textarea
# and execCommand, which works over plain http too. The handler contains no data.
_COPY_JS = (
    "(function(b){var box=b.closest('.aitestbed-dataset-code');"
    "var t=box&&box.querySelector('textarea');if(!t){return;}var v=t.value;"
    "function done(){b.textContent='Copied';setTimeout(function(){b.textContent='Copy';},1500);}"
    "function fallback(){var x=document.createElement('textarea');x.value=v;"
    "x.style.position='fixed';x.style.opacity='0';document.body.appendChild(x);x.select();"
    "try{document.execCommand('copy');done();}finally{document.body.removeChild(x);}}"
    "if(navigator.clipboard&&window.isSecureContext){"
    "navigator.clipboard.writeText(v).then(done,fallback);}else{fallback();}})(this)"
)
COPY_BUTTON = (
    "<button class='jupyter-button aitestbed-copy' title='Copy the code to the clipboard' "
    f'onclick="{html.escape(_COPY_JS, quote=True)}">Copy</button>'
)


def load_snippet(slug: str, file_path: str = "", *, folder: bool = False) -> str:
    """Python that loads ``file_path`` of ``slug`` in a session (pandas for tables), or
    lists it where it is a folder (the dataset's root when ``file_path`` is empty)."""
    where = f"aitestbed.datasets.path({json.dumps(slug)})"
    if file_path:
        where += f" / {json.dumps(file_path)}"
    lower = file_path.lower()
    if folder or not file_path:
        return f"import aitestbed\n\nfolder = {where}\nsorted(p.name for p in folder.iterdir())"
    if lower.endswith(".csv"):
        return f"import aitestbed\nimport pandas as pd\n\ndf = pd.read_csv({where})\ndf.head()"
    if lower.endswith(".tsv"):
        return (
            f"import aitestbed\nimport pandas as pd\n\ndf = pd.read_csv({where}, sep='\\t')\n"
            "df.head()"
        )
    if lower.endswith(".parquet"):
        return f"import aitestbed\nimport pandas as pd\n\ndf = pd.read_parquet({where})\ndf.head()"
    if lower.endswith((".png", ".jpg", ".jpeg", ".gif")):
        return f"import aitestbed\nfrom IPython.display import Image\n\nImage(filename={where})"
    return f"import aitestbed\n\ntext = ({where}).read_text()"


def _size(size: int | None) -> str:
    if size is None:
        return "unknown size"
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _when(stamp: str | None) -> str:
    """An ISO time from the portal (UTC) as ``2026-11-26 06:27 UTC``; as given otherwise."""
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(stamp or "")
    except ValueError:
        return stamp or ""
    when = when.astimezone(UTC) if when.tzinfo else when
    return when.strftime("%Y-%m-%d %H:%M UTC")


def details_html(info: datasets.DatasetInfo) -> str:
    """The details panel of one dataset; every value from the portal is escaped."""
    e = html.escape
    tags = ", ".join(e(t) for t in info.tags) or "none"
    if info.usable:
        access = "<span class='aitestbed-ok'>You may use it.</span>"
    else:
        access = f"<span class='error'>{e(info.access.reason or info.access.code)}</span>"
    terms = ""
    if info.terms_version:
        state = (
            f"accepted {e(_when(info.accepted_at))}" if info.terms_accepted else "not accepted yet"
        )
        terms = (
            f"<h4>Terms (version {e(info.terms_version)}, {state})</h4>"
            f"<blockquote class='aitestbed-terms'>{e(info.terms_text)}</blockquote>"
        )
    files = f"{info.file_count} files" if info.file_count is not None else "files: unknown"
    size = f"{_size(info.size_bytes)}, {files}"
    if info.size_state == "measuring":
        size = "being measured, look again in a minute"
    return (
        f"<h3>{e(info.title)} <code>{e(info.slug)}</code></h3>"
        f"<p>{e(info.description)}</p>"
        "<table class='aitestbed-dataset-facts'>"
        f"<tr><td>License</td><td>{e(info.license or 'not stated')}</td></tr>"
        f"<tr><td>Version</td><td>{e(info.version)}</td></tr>"
        f"<tr><td>Tags</td><td>{tags}</td></tr>"
        f"<tr><td>Size</td><td>{size}</td></tr>"
        f"<tr><td>In sessions</td><td><code>{e(info.path)}</code></td></tr>"
        f"<tr><td>Access</td><td>{access}</td></tr>"
        "</table>"
        f"{terms}"
    )


def _hidden(widget: widgets.Widget, hidden: bool) -> None:
    widget.layout.display = "none" if hidden else None


class DatasetBrowser(widgets.VBox):
    """Search, details with license and terms, accept, file previews, code to load."""

    def __init__(self, client: PortalClient | None = None) -> None:
        self.client = client or datasets._client(None)
        self.current: datasets.DatasetInfo | None = None
        self._quiet = False  # set while the widget itself changes a list's options
        self.folder = ""
        self.file_path = ""
        self.search_box = widgets.Text(
            placeholder="Search datasets", description="Search", continuous_update=False
        )
        self.tag_filter = widgets.Dropdown(options=[("All tags", "")], description="Tag")
        self.search_button = widgets.Button(description="Search", icon="search")
        self.status = widgets.HTML()
        self.results = widgets.Select(options=[], rows=10, layout=widgets.Layout(width="320px"))
        self.details = widgets.HTML()
        self.accept_button = widgets.Button(description="Accept terms", button_style="warning")
        self.confirm_text = widgets.HTML()
        self.confirm_button = widgets.Button(description="Yes, I accept", button_style="danger")
        self.cancel_button = widgets.Button(description="Cancel")
        self.confirm_box = widgets.HBox(
            [self.confirm_text, self.confirm_button, self.cancel_button]
        )
        self.file_list = widgets.Select(options=[], rows=8, layout=widgets.Layout(width="100%"))
        self.preview_area = widgets.Box(layout=widgets.Layout(flex_flow="row wrap"))
        self.code = widgets.Textarea(disabled=True, rows=5, layout=widgets.Layout(width="100%"))
        self.copy_button = widgets.HTML(COPY_BUTTON)
        self.code_box = widgets.HBox([self.code, self.copy_button])
        self.code_box.add_class("aitestbed-dataset-code")
        self.panel = widgets.VBox(
            [
                self.details,
                self.accept_button,
                self.confirm_box,
                widgets.HTML("<b>Files</b>"),
                self.file_list,
                widgets.HTML("<b>Preview</b>"),
                self.preview_area,
                widgets.HTML("<b>Load it</b>"),
                self.code_box,
            ],
            layout=widgets.Layout(flex="1", padding="0 4px 0 16px"),
        )
        super().__init__(
            [
                widgets.HBox([self.search_box, self.tag_filter, self.search_button]),
                self.status,
                widgets.HBox([self.results, self.panel]),
            ]
        )
        self.add_class("aitestbed-dataset-browser")
        # While the widget sets its own options (_quiet), a change is not a user's action.
        self.search_box.observe(lambda _c: self._quiet or self.refresh(), names="value")
        self.tag_filter.observe(lambda _c: self._quiet or self.refresh(), names="value")
        self.search_button.on_click(lambda _b: self.refresh())
        self.results.observe(lambda c: self._quiet or self.show(c["new"]), names="value")
        self.accept_button.on_click(lambda _b: self.ask_to_accept())
        self.confirm_button.on_click(lambda _b: self.accept())
        self.cancel_button.on_click(lambda _b: self._ask(False))
        self.file_list.observe(lambda c: self._quiet or self.choose_file(c["new"]), names="value")
        self._clear_panel()
        self.refresh()

    # -- messages ------------------------------------------------------------------------

    def _error(self, message: str) -> None:
        self.status.value = f"<span class='error'>{html.escape(message, quote=False)}</span>"

    def _note(self, message: str) -> None:
        self.status.value = html.escape(message, quote=False)

    def _failed(self, error: datasets.DatasetError, doing: str) -> None:
        if error.code == "terms-not-accepted":
            self._error(f"{error} Accept the terms (button above) to {doing}.")
        elif error.code == "storage-not-readable":
            self._error(
                f"{error} It is not mounted in this session at "
                f"{datasets.datasets_dir() / (self.current.slug if self.current else '')}."
            )
        else:
            self._error(str(error))

    # -- search --------------------------------------------------------------------------

    def refresh(self) -> None:
        """Search again with the box and the tag filter; keep the selection if it is found.

        One search is one listing at the portal (one audit entry): the tag filter's counts
        come from the same answer when nothing narrows it, and are kept otherwise."""
        text, chosen = self.search_box.value.strip(), self.tag_filter.value
        try:
            result = datasets.page(text, chosen or None, limit=MAX_RESULTS, client=self.client)
        except datasets.DatasetError as error:
            self._error(str(error))
            return
        if not text and not chosen:
            self._set_tags(result.tags)
        found = result.items
        selected = self.results.value
        self._quiet = True
        try:
            self.results.options = [(self._label(d), d.slug) for d in found]
            self.results.value = selected if selected in {d.slug for d in found} else None
        finally:
            self._quiet = False
        if not found:
            self._note("No dataset matches. Clear the search or the tag filter.")
        elif result.total > len(found):
            self._note(f"The first {len(found)} of {result.total} datasets: search to narrow.")
        else:
            self._note(f"{len(found)} dataset{'s' if len(found) != 1 else ''}.")
        if self.results.value is None:
            self._clear_panel()

    def _set_tags(self, tags) -> None:
        chosen = self.tag_filter.value
        options = [("All tags", "")] + [(f"{t.tag} ({t.count})", t.tag) for t in tags]
        if chosen and chosen not in {t.tag for t in tags}:
            options.append((chosen, chosen))
        self._quiet = True
        try:
            self.tag_filter.options = options
            self.tag_filter.value = chosen
        finally:
            self._quiet = False

    @staticmethod
    def _label(dataset: datasets.Dataset) -> str:
        if dataset.usable:
            mark = ""
        elif dataset.access.code == "terms-not-accepted":
            mark = " - terms to accept"
        else:
            mark = " - no access"
        return f"{dataset.title} ({dataset.slug}){mark}"

    # -- one dataset ---------------------------------------------------------------------

    def _clear_panel(self) -> None:
        self.current = None
        self.details.value = "<i>Pick a dataset on the left.</i>"
        _hidden(self.accept_button, True)
        self._ask(False)
        self._set_files([])
        self.preview_area.children = ()
        self.code.value = ""
        _hidden(self.code_box, True)

    def show(self, slug: str | None) -> None:
        """Show ``slug``'s details, its files (if you may read them) and the loading code."""
        if not slug:
            self._clear_panel()
            return
        try:
            info = datasets.info(slug, client=self.client)
        except datasets.DatasetError as error:
            self._clear_panel()
            self._error(str(error))
            return
        self.current = info
        self.details.value = details_html(info)
        _hidden(self.accept_button, not info.terms_version or info.terms_accepted)
        self._ask(False)
        self.preview_area.children = ()
        self._set_code("")
        if info.usable:
            self.open_folder("", auto_preview=True)
        else:
            self._set_files([])
            self._note(
                f"Accept the terms to see the files of {slug}."
                if info.access.code == "terms-not-accepted"
                else f"You cannot open the files of {slug}: {info.access.reason}"
            )

    def _set_code(self, path: str, folder: bool = False) -> None:
        if self.current is None:
            return
        self.code.value = load_snippet(self.current.slug, path, folder=folder)
        _hidden(self.code_box, False)

    # -- terms ---------------------------------------------------------------------------

    def _ask(self, asking: bool) -> None:
        _hidden(self.confirm_box, not asking)

    def ask_to_accept(self) -> None:
        """The first press asks for confirmation; nothing is recorded yet."""
        if self.current is None or not self.current.terms_version:
            return
        self.confirm_text.value = (
            f"Accept the terms above (version {html.escape(self.current.terms_version)}) "
            f"for yourself? Your acceptance is recorded."
        )
        self._ask(True)

    def accept(self) -> None:
        """Record the acceptance of the terms shown, then show the dataset again."""
        if self.current is None or not self.current.terms_version:
            return
        slug = self.current.slug
        try:
            accepted = datasets.accept_terms(
                slug, self.current.terms_version, quiet=True, client=self.client
            )
        except datasets.DatasetError as error:
            self._ask(False)
            self._error(str(error))
            return
        self.refresh()
        self.show(slug)
        self._note(
            f"You accepted version {accepted.terms_version} of the terms of {slug}. Restart "
            f"your session to have it mounted at {datasets.datasets_dir() / slug}."
        )

    # -- files and previews --------------------------------------------------------------

    def _set_files(self, options: list) -> None:
        self._quiet = True
        try:
            self.file_list.options = options
            self.file_list.value = None
        finally:
            self._quiet = False

    def choose_file(self, choice: tuple[str, str] | None) -> None:
        """A pick in the file list: a folder opens, a file is previewed."""
        if not choice:
            return
        kind, path = choice
        if kind == "dir":
            self.open_folder(path)
        else:
            self.preview(path)

    def open_folder(self, path: str, auto_preview: bool = False) -> None:
        if self.current is None:
            return
        try:
            folder = datasets.files(self.current.slug, path, client=self.client)
        except datasets.DatasetError as error:
            self._set_files([])
            self._failed(error, "see its files")
            return
        self.folder = folder.path
        options = []
        if folder.path:
            parent = folder.path.rpartition("/")[0]
            options.append((UP, ("dir", parent)))
        for entry in folder.entries:
            label = (
                f"{entry.name}/" if entry.type == "dir" else f"{entry.name} ({_size(entry.size)})"
            )
            options.append((label, (entry.type, entry.path)))
        self._set_files(options)
        more = " (list cut short)" if folder.truncated else ""
        self._note(f"{self.current.slug}/{folder.path}: {len(folder.entries)} entries{more}.")
        self._set_code(folder.path, folder=True)
        images = [e for e in folder.entries if e.type == "file" and _is_image(e.path)]
        self.preview_area.children = ()
        if images:
            self.thumbnails([e.path for e in images[:THUMBNAILS]])
        elif auto_preview:
            table = next((e for e in folder.entries if _is_table(e.path)), None)
            if table is not None:
                self.preview(table.path)

    def thumbnails(self, paths: list[str]) -> None:
        """Small previews of several images, each titled with its file name."""
        if self.current is None:
            return
        tiles = []
        for path in paths:
            try:
                shown = datasets.preview(self.current.slug, path, client=self.client)
            except datasets.DatasetError as error:
                self._failed(error, "see its images")
                break
            tiles.append(self._image_tile(shown, width="64px"))
        self.preview_area.children = tuple(tiles)

    @staticmethod
    def _image_tile(shown: datasets.Preview, width: str) -> widgets.Widget:
        image_format = (shown.media_type or "image/png").split("/")[-1]
        image = widgets.Image(
            value=shown.image_bytes(), format=image_format, layout=widgets.Layout(width=width)
        )
        image.add_class("aitestbed-thumbnail")
        name = widgets.HTML(f"<small>{html.escape(shown.path.rpartition('/')[2])}</small>")
        return widgets.VBox([image, name], layout=widgets.Layout(margin="0 6px 6px 0"))

    def preview(self, path: str) -> None:
        """Show the start of ``path``: a table, an image or text; and the code to load it."""
        if self.current is None:
            return
        try:
            shown = datasets.preview(self.current.slug, path, PREVIEW_ROWS, client=self.client)
        except datasets.DatasetError as error:
            self._failed(error, "preview its files")
            return
        self.file_path = path
        self._set_code(path)
        if shown.kind == "image":
            self.preview_area.children = (self._image_tile(shown, width="128px"),)
        else:
            view = widgets.HTML(
                f"<div class='aitestbed-preview-box' style='max-height:360px;overflow:auto'>"
                f"{shown.to_html()}</div>"
            )
            self.preview_area.children = (view,)
        where = " (read from this session's mount)" if shown.source == "mount" else ""
        self._note(f"Preview of {self.current.slug}/{path}{where}.")


def _is_image(path: str) -> bool:
    return path.lower().endswith((".png", ".jpg", ".jpeg", ".gif"))


def _is_table(path: str) -> bool:
    return path.lower().endswith((".csv", ".tsv", ".parquet"))


def dataset_browser(client: PortalClient | None = None) -> DatasetBrowser:
    return DatasetBrowser(client)
