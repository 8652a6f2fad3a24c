"""The archive of dev/release.sh, byte for byte reproducible: the same tree, wheels, commit and
time give the same bytes with the same zlib (sorted entries, one fixed time stamp, owner 0/0
without names, modes 644/755, gzip without time stamp or file name).

    release.py TREE VENDOR OUT COMMIT EPOCH

TREE is a clean export of COMMIT (git archive); VENDOR holds the wheel sets dev/bundle-deps.sh
made (pyXY/ with SHA256SUMS); EPOCH is the time stamp of every entry (the commit's time).

Each wheel's licence comes from its dist-info; where a wheel lacks the text (or names a file it
does not carry), TREE/dev/licenses/<project>.txt supplies it, taken from the project's sdist.
A wheel without any licence text stops the build.
"""
import email.parser
import gzip
import io
import os
import sys
import tarfile
import time
import zipfile
from typing import Dict, List, Tuple

# Files beside the runtime that a person who downloads the archive reads.
DOCUMENTS = ("README.md",)
LICENCE_FILE_PREFIXES = ("LICENSE", "LICENCE", "COPYING", "NOTICE")

Entry = Tuple[bytes, bool]  # content, executable


def read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def wheel_licence(path: str, supplements: str) -> Tuple[str, str, str, List[Tuple[str, str]]]:
    """(name, version, declared licence, [(file name, text)]) of a wheel, from its dist-info and
    the folder of ``supplements``."""
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        metadata = email.parser.Parser().parsestr(wheel.read(info + "/METADATA").decode("utf-8"))
        declared = [metadata.get("License-Expression") or ""]
        if not declared[0]:
            short = (metadata.get("License") or "").strip()
            declared = [short] if short and "\n" not in short else []
            declared += [c.split("::")[-1].strip() for c in metadata.get_all("Classifier") or []
                         if c.startswith("License ::")]
        texts = [(n[len(info) + 1:], wheel.read(n).decode("utf-8", "replace")) for n in sorted(names)
                 if n.startswith(info + "/licenses/")
                 or (n.count("/") == 1 and n.split("/")[1].upper().startswith(LICENCE_FILE_PREFIXES))]
    supplement = os.path.join(supplements, metadata["Name"].lower().replace("_", "-") + ".txt")
    if os.path.isfile(supplement):
        texts.append(("dev/licenses/" + os.path.basename(supplement), read(supplement).decode("utf-8")))
    if not texts:
        raise SystemExit("release.py: %s carries no licence text: add it, from the project's sdist, as "
                         "dev/licenses/%s" % (os.path.basename(path), os.path.basename(supplement)))
    return metadata["Name"], metadata["Version"], "; ".join(d for d in declared if d) or "see the text", texts


def third_party_licences(wheels: Dict[str, List[str]], supplements: str) -> bytes:
    """The THIRD-PARTY-LICENSES file: each bundled wheel, the sets it is in, its licence and texts."""
    sets_of: Dict[str, List[str]] = {}
    path_of: Dict[str, str] = {}
    for set_name, paths in sorted(wheels.items()):
        for path in paths:
            sets_of.setdefault(os.path.basename(path), []).append(set_name)
            path_of[os.path.basename(path)] = path
    out = ["Libraries bundled with pylon-venus (vendor/ in the release archive, lib/ once installed).",
           "pylon-venus itself is under the MIT licence (LICENSE). Each library below is shipped",
           "unmodified as its wheel, under its own licence; its Python source is the wheel's content,",
           "and you may replace it in lib/. msgpack is built from its sdist as pure Python.", ""]
    for wheel in sorted(sets_of, key=str.lower):
        name, version, declared, texts = wheel_licence(path_of[wheel], supplements)
        out += ["=" * 78, "%s %s (%s, in %s)" % (name, version, wheel, ", ".join(sets_of[wheel])),
                "Licence: %s" % declared, "=" * 78]
        for file_name, text in texts:
            out += ["--- %s ---" % file_name, text.rstrip("\n"), ""]
    return ("\n".join(out) + "\n").encode("utf-8")


def release_entries(tree: str, vendor: str, version: str, commit: str, epoch: int) -> Dict[str, Entry]:
    sys.path.insert(0, os.path.join(tree, "service"))
    import install_tree  # the one rule for what the device runs (install.sh uses it too)

    entries: Dict[str, Entry] = {}
    for relative in install_tree.runtime_files(tree) + [d for d in DOCUMENTS if os.path.isfile(os.path.join(tree, d))]:
        path = os.path.join(tree, relative)
        entries[relative] = (read(path), bool(os.stat(path).st_mode & 0o100))
    wheels: Dict[str, List[str]] = {}
    for set_name in sorted(os.listdir(vendor)):
        sums = os.path.join(vendor, set_name, "SHA256SUMS")
        if set_name.startswith("py") and os.path.isfile(sums):
            wheels[set_name] = install_tree.verified_wheels(sums)
            entries["vendor/%s/SHA256SUMS" % set_name] = (read(sums), False)
            for path in wheels[set_name]:
                entries["vendor/%s/%s" % (set_name, os.path.basename(path))] = (read(path), False)
    if not wheels:
        raise SystemExit("release.py: no wheel sets in %s: run dev/bundle-deps.sh" % vendor)
    entries["THIRD-PARTY-LICENSES"] = (third_party_licences(wheels, os.path.join(tree, "dev", "licenses")), False)
    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    stamp = "version %s\ncommit %s\ndate %s\n" % (version, commit, date)
    entries["VERSION"] = (stamp.encode("ascii"), False)
    return entries


def write_archive(out: str, top: str, entries: Dict[str, Entry], epoch: int) -> None:
    folders = {top}
    for relative in entries:
        parts = relative.split("/")[:-1]
        folders.update("/".join([top] + parts[:n]) for n in range(1, len(parts) + 1))
    members = {folder: None for folder in folders}
    members.update({top + "/" + relative: entry for relative, entry in entries.items()})
    temporary = out + ".tmp"
    with open(temporary, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as packed:
            with tarfile.open(fileobj=packed, mode="w", format=tarfile.USTAR_FORMAT) as archive:
                for name in sorted(members):
                    info = tarfile.TarInfo(name)
                    info.mtime, info.uid, info.gid, info.uname, info.gname = epoch, 0, 0, "", ""
                    entry = members[name]
                    if entry is None:
                        info.type, info.mode = tarfile.DIRTYPE, 0o755
                        archive.addfile(info)
                    else:
                        content, executable = entry
                        info.size, info.mode = len(content), 0o755 if executable else 0o644
                        archive.addfile(info, io.BytesIO(content))
    os.replace(temporary, out)


def main(argv) -> int:
    if len(argv) != 5:
        raise SystemExit(__doc__)
    tree, vendor, out, commit, epoch = argv[0], argv[1], argv[2], argv[3], int(argv[4])
    top = os.path.basename(out)[:-len(".tar.gz")]
    version = top[len("pylon-venus-"):]
    write_archive(out, top, release_entries(tree, vendor, version, commit, epoch), epoch)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
