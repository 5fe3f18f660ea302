"""Real background recordings shipped in Debian packages, decoded to mono at a chosen rate.

- ``ufoai-sound``: the ambience loops of UFO: Alien Invasion (fire, water, wind, city,
  machinery, ...), Ogg Vorbis files inside the zip archive ``0snd.pk3``.
- ``openttd-opensfx``: the OpenSFX sound effects (Freesound recordings, CC-BY/CC0) in an
  OpenTTD sound catalogue ``opensfx.cat``: a table of (offset, size) uint32 pairs (the first
  offset, without its top bit, is the table size), each entry a length-prefixed title followed
  by a RIFF/WAVE file.

The packages' files are found with ``dpkg -L``. Each clip carries a ``group``: the unit a
noise bank splits by, so that variants of one recording never land in two splits.
"""

from __future__ import annotations

import re
import struct
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from audio_lottery.data.audio import decode_audio

AMBIENCE_PACKAGE = "ufoai-sound"
EFFECTS_PACKAGE = "openttd-opensfx"


class MissingPackage(RuntimeError):
    """A Debian package with noise recordings is not installed; the message says how to get it."""


@dataclass
class NoiseClip:
    """One decoded recording: ``group`` clips always share a split."""

    name: str  # original file, e.g. "sound/ambience/fire03.ogg"
    group: str  # split unit, e.g. "ufoai-sound:fire"
    category: str  # "ambience" or "effects"
    origin: str  # Debian package
    wave: np.ndarray  # float32 mono at the requested sample rate
    info: dict = field(default_factory=dict)  # extra manifest fields (title, license)


def package_files(package: str) -> list[Path]:
    """Files installed by a Debian package (``dpkg -L``); :class:`MissingPackage` if it is absent."""
    try:
        res = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
    except FileNotFoundError:
        raise MissingPackage(f"{package}: dpkg not found, cannot locate the package's files") from None
    if res.returncode != 0:
        raise MissingPackage(f"Debian package {package} is not installed (sudo apt-get install {package}, "
                             f"or `make setup`); its recordings are left out of the noise bank")
    return [Path(line) for line in res.stdout.splitlines() if line.strip() and Path(line).is_file()]


def _find(package: str, suffix: str) -> Path:
    hits = [p for p in package_files(package) if p.name.endswith(suffix)]
    if not hits:
        raise MissingPackage(f"Debian package {package} is installed but has no *{suffix} file")
    return hits[0]


def family(stem: str) -> str:
    """Recording family of a file stem: trailing digits and separators dropped (``fire03`` -> ``fire``)."""
    return re.sub(r"[\d_\-]+$", "", stem) or stem


def ufoai_ambience(sample_rate: int, limit: int = 0, package: str = AMBIENCE_PACKAGE) -> list[NoiseClip]:
    """The ambience loops (``sound/ambience/*.ogg``) of ``ufoai-sound``, grouped by family."""
    archive = _find(package, ".pk3")
    with zipfile.ZipFile(archive) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith("sound/ambience/") and n.endswith(".ogg"))
        if limit:
            names = names[:limit]
        clips = []
        for name in names:
            wave = decode_audio(zf.read(name), sample_rate, f"{archive}:{name}")
            clips.append(NoiseClip(name, f"{package}:{family(Path(name).stem)}", "ambience", package, wave,
                                   {"license": f"see /usr/share/doc/{package}/copyright"}))
    return clips


_QUOTED = re.compile(r'"([^"]+)"(\s+by\b)?')
_AUDIO_EXT = re.compile(r"\.(wav|mp3|aif|aiff|flac|ogg)$", re.IGNORECASE)


def opensfx_originals(description: str) -> tuple[str, list[str]]:
    """(title, original recordings) from an OpenSFX entry description.

    ``'"Wind". Original "wind1.wav" by "Anton". ...'`` -> ``("Wind", ["wind1.wav"])``: after the
    title, a quoted name followed by ``by`` or ending in an audio extension is an original.
    """
    quoted = list(_QUOTED.finditer(description))
    if not quoted:
        return description.strip(), []
    title = quoted[0].group(1)
    originals = [m.group(1) for m in quoted[1:] if m.group(2) or _AUDIO_EXT.search(m.group(1))]
    return title, originals


def read_sound_catalogue(path: Path) -> list[tuple[str, bytes]]:
    """(description, RIFF/WAVE bytes) of every entry of an OpenTTD ``.cat`` sound catalogue."""
    data = Path(path).read_bytes()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for an OpenTTD sound catalogue")
    count = (struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF) // 8
    if count == 0 or 8 * count > len(data):
        raise ValueError(f"{path}: not an OpenTTD sound catalogue (bad entry table)")
    entries = []
    for i in range(count):
        offset, size = struct.unpack_from("<II", data, 8 * i)
        offset &= 0x7FFFFFFF
        if offset >= len(data):
            raise ValueError(f"{path}: entry {i} points past the end of the file")
        name_len = data[offset]
        desc = data[offset + 1 : offset + 1 + name_len].rstrip(b"\0").decode("utf-8", errors="replace")
        start = offset + 1 + name_len
        entries.append((desc, data[start : start + size]))
    return entries


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def opensfx_effects(sample_rate: int, limit: int = 0, package: str = EFFECTS_PACKAGE) -> list[NoiseClip]:
    """The OpenSFX effects; entries edited from a common original recording share a group."""
    catalogue = _find(package, ".cat")
    entries = []
    for index, (desc, wav) in enumerate(read_sound_catalogue(catalogue)):
        title, originals = opensfx_originals(desc)
        if len(wav) <= 44 or title.startswith("Unused"):
            continue  # the catalogue's empty placeholder entries
        entries.append((index, desc, title, originals, wav))
    if limit:
        entries = entries[:limit]
    groups = _UnionFind()
    for index, _, title, originals, _ in entries:
        keys = originals or [f"entry {index:02d}: {title}"]
        for key in keys:
            groups.union(keys[0], key)
    clips = []
    for index, desc, title, originals, wav in entries:
        name = f"{index:02d} {title}"
        wave = decode_audio(wav, sample_rate, f"{catalogue}:{name}")
        group = groups.find((originals or [f"entry {index:02d}: {title}"])[0])
        clips.append(NoiseClip(name, f"{package}:{group}", "effects", package, wave,
                               {"title": title, "credit": desc}))
    return clips


# category -> (Debian package, reader)
PACKAGE_SOURCES: dict[str, tuple[str, Callable[..., list[NoiseClip]]]] = {
    "ambience": (AMBIENCE_PACKAGE, ufoai_ambience),
    "effects": (EFFECTS_PACKAGE, opensfx_effects),
}
