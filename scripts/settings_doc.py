"""Render docs/settings.md from the settings (azjobs/settings/, azjobs/cli/settings_doc.py).

Run `python scripts/settings_doc.py` from the repository root.
"""

from pathlib import Path

from azjobs.cli.settings_doc import markdown

if __name__ == "__main__":
    path = Path(__file__).resolve().parent.parent / "docs" / "settings.md"
    path.write_text(markdown())
    print(f"wrote {path}")
