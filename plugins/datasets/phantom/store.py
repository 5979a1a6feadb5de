"""The phantom's cache: one folder per configuration, one file pair per case.

``<cache>/phantom-<config key>/`` holds ``config.json``, ``index.csv`` (case id, split, labels)
and ``cases/<case id>.npz`` (int16 HU volume, organ bit map, finding-instance bit map) plus
``cases/<case id>.json`` (report, findings, spacing, cues). Cases are generated on first use
(by whichever process asks, DataLoader workers included) and written atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ctbench.core.cases import Case, Finding, InvalidCaseError
from ctbench.runtime.storage import read_json, read_npz, write_json, write_npz
from ctbench.vocabulary import ORGANS

ORGAN_BITS = {name: 1 << i for i, name in enumerate(ORGANS)}
MAX_FINDINGS = 16


def encode(case: Case) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays and JSON metadata of a case, ready to store."""
    organ_bits = np.zeros(case.volume.shape, np.uint8)
    for name, mask in (case.organs or {}).items():
        organ_bits[mask] |= ORGAN_BITS[name]
    if len(case.findings) > MAX_FINDINGS:
        raise ValueError(f"{case.case_id}: more than {MAX_FINDINGS} finding instances")
    finding_bits = np.zeros(case.volume.shape, np.uint16)
    for k, finding in enumerate(case.findings):
        finding_bits[finding.mask] |= np.uint16(1 << k)
    arrays = {"volume": case.volume, "organs": organ_bits, "findings": finding_bits}
    meta = {
        "case_id": case.case_id,
        "spacing": list(case.spacing),
        "report": case.report,
        "findings": [
            {"label": f.label, "organs": list(f.organs), "details": f.details}
            for f in case.findings
        ],
        "meta": case.meta,
    }
    return arrays, meta


def decode(arrays: dict[str, np.ndarray], meta: dict, labels: np.ndarray) -> Case:
    organ_bits = arrays["organs"]
    organs = {name: (organ_bits & bit) > 0 for name, bit in ORGAN_BITS.items()}
    finding_bits = arrays["findings"]
    findings = [
        Finding(f["label"], tuple(f["organs"]), (finding_bits & (1 << k)) > 0, f["details"])
        for k, f in enumerate(meta["findings"])
    ]
    return Case(
        meta["case_id"],
        arrays["volume"],
        tuple(meta["spacing"]),
        labels,
        meta["report"],
        organs,
        findings,
        meta["meta"],
    )


class CaseStore:
    """Reads and writes the cases of one configuration folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.cases = self.folder / "cases"

    def paths(self, case_id: str) -> tuple[Path, Path]:
        return self.cases / f"{case_id}.npz", self.cases / f"{case_id}.json"

    def has(self, case_id: str) -> bool:
        return all(p.exists() for p in self.paths(case_id))

    def save(self, case: Case) -> None:
        arrays, meta = encode(case)
        npz, js = self.paths(case.case_id)
        write_npz(npz, **arrays)
        write_json(js, meta)  # written last: its presence marks the case complete

    def load(self, case_id: str, labels: np.ndarray) -> Case:
        npz, js = self.paths(case_id)
        try:
            arrays = read_npz(npz)
            meta = read_json(js)
        except (ValueError, OSError) as error:
            raise InvalidCaseError(f"{case_id}: {error}") from error
        missing = {"volume", "organs", "findings"} - set(arrays)
        if missing:
            raise InvalidCaseError(f"{case_id}: {npz} lacks arrays {sorted(missing)}")
        if arrays["volume"].dtype != np.int16:
            raise InvalidCaseError(
                f"{case_id}: {npz} volume is {arrays['volume'].dtype}, not int16"
            )
        return decode(arrays, meta, labels)
