"""Report labelers (issue 32): the plugin kind and its CLI, the report-level rules, the
labeler on CT-RATE's real reports (F1 and locations), and the ct-rate dataset's agreement."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from ctbench.cli import main
from ctbench.regions.labeler import label_report
from ctbench.vocabulary import ct_rate_labels, ct_rate_paper_labels, output_labels

from tests.real_layouts import write_ct_rate
from tests.test_real_datasets import TINY, chest_volume

REPO = Path(__file__).resolve().parents[1]
CT_RATE_REPORTS = REPO.parent / "shared" / "data" / "ctrate_reports" / "train.csv"
needs_reports = pytest.mark.skipif(
    not CT_RATE_REPORTS.is_file(),
    reason=f"CT-RATE's labelled reports {CT_RATE_REPORTS} are absent (CI has them)",
)


# --- the report-level rules ------------------------------------------------------------


def test_a_finding_lies_on_the_side_another_sentence_states():
    """ "Atelectasis in places" says no side; the report's other sentence says the right."""
    report = "Atelectasis in the right lower lobe. There is also atelectasis in places."
    assert label_report(report)["locations"] == {"lung_atelectasis": ["right_lung"]}
    alone = "There is atelectasis in places."
    assert label_report(alone)["locations"] == {"lung_atelectasis": ["right_lung", "left_lung"]}
    both = "Atelectasis in the right lower lobe. Atelectasis in both lungs."
    assert label_report(both)["locations"]["lung_atelectasis"] == ["right_lung", "left_lung"]


def test_quotes_and_bullets_delimit_sentences():
    """CT-RATE's impressions list findings between quotes or after bullets: each is a
    sentence, so one item's "both lungs" does not place the next item's nodule."""
    report = '" Atelectasis in both lungs." Nodule in the right upper lobe. • Emphysema.'
    located = label_report(report)["locations"]
    assert located["lung_nodule"] == ["right_lung"]
    assert located["lung_atelectasis"] == ["right_lung", "left_lung"]
    assert "lung_emphysema" in located


def test_an_exclusion_gives_way_to_the_words_that_keep_a_hit():
    """``despite``: the abdominal aorta is outside the chest unless the sentence also names a
    thoracic part; an effusion in the pericardial space is no pleural effusion unless the
    sentence also names the pleura or a hemithorax."""
    both = label_report("Calcific atheroma plaques in the aortic arch and abdominal aorta.")
    assert both["locations"]["h_great_vessel_atherosclerosis"] == ["great_vessel"]
    abdominal = label_report("Calcific atheroma plaques in the abdominal aorta.")
    assert "h_great_vessel_atherosclerosis" not in abdominal["locations"]
    assert label_report("Minimal effusion in the pericardial space.")["locations"] == {
        "heart_pericardial_effusion": ["heart"]
    }
    two = label_report("Effusion in the pericardial space and in the right hemithorax.")
    assert two["locations"] == {
        "heart_pericardial_effusion": ["heart"],
        "lung_pleural_effusion": ["right_lung"],
    }


def test_the_ct_rate_mapping_names_known_labels():
    mapping = ct_rate_paper_labels()
    assert len(mapping) == 15 and set(mapping) < set(ct_rate_labels())
    assert set(ct_rate_labels()) - set(mapping) == {
        "Medical material",
        "Hiatal hernia",
        "Mosaic attenuation pattern",
    }
    assert {p for names in mapping.values() for p in names} <= set(output_labels())


# --- the plugin kind, from the command line -----------------------------------------------


def test_labels_names_its_labeler():
    text = "No pleural effusion. Millimetric lymph nodes in the mediastinum."
    for name in ("sarle", "negex", "sarle-negex"):
        result = CliRunner().invoke(main, ["labels", "--labeler", name, "--json", "--text", text])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["locations"] == {
            "h_mediastinum_lymphadenopathy": ["mediastinum"]
        }
    wrong = CliRunner().invoke(main, ["labels", "--labeler", "sarl", "--text", text])
    assert wrong.exit_code == 2 and "unknown labeler 'sarl'. Did you mean 'sarle'" in wrong.output


def test_the_negex_labelers_reads_negation_by_negex():
    """NegEx negates within its scope and the SARLE rules do not run: "without" in
    "cardiomegaly without effusion" is NegEx's, and a phrase SARLE deletes as normal ("heart
    size is normal" with a finding word) is kept by plain NegEx."""
    from ctbench.core.api import create_labeler

    negex, sarle = create_labeler("negex"), create_labeler("sarle")
    report = "Cardiomegaly without pericardial effusion."
    assert negex(report) == sarle(report) == {"heart_cardiomegaly": ["heart"]}
    normal = "Normal appearance of the right lung nodule."
    assert sarle(normal) == {} and negex(normal) == {"lung_nodule": ["right_lung"]}


def test_each_labeler_fingerprints_its_rules():
    """The fingerprint that keys PARTITION's cache names the labeler and its rules (a property
    that raised would be read as absent, and the key would silently fall back)."""
    from ctbench.core.api import create_labeler
    from ctbench.regions import labeler as rules

    assert create_labeler("sarle").fingerprint == f"sarle {rules.fingerprint()}"
    assert create_labeler("negex").fingerprint.startswith(f"negex {rules.fingerprint()} negspacy")
    sarle_negex = create_labeler("sarle-negex").fingerprint
    assert sarle_negex.startswith(f"sarle-negex {rules.fingerprint()}")


def test_a_labeler_whose_extra_is_missing_says_how_to_install_it(monkeypatch):
    from ctbench.core.api import create_labeler
    from ctbench.regions.labeling import labeler

    labeler.cache_clear()  # built in another test: build it again, without negspacy
    monkeypatch.setitem(sys.modules, "negspacy", None)  # import negspacy fails
    monkeypatch.setitem(sys.modules, "negspacy.negation", None)
    with pytest.raises(ImportError, match=r"pip install 'ctbench\[negex\]'"):
        create_labeler("negex")
    result = CliRunner().invoke(main, ["labels", "--labeler", "negex", "--text", "Nodule."])
    assert result.exit_code == 1 and "pip install 'ctbench[negex]'" in result.output
    labeler.cache_clear()


def test_a_labeler_without_place_places_through_the_paper_labels(example_plugin):
    """``example-keywords`` has no ``place``: CT-RATE's labels come from its paper labels."""
    from ctbench.regions.labeling import labeler, place

    labeler.cache_clear()
    table = ct_rate_labels()
    report = "Small right pleural effusion. Cardiomegaly. No nodule."
    assert place(report, table, "example-keywords") == {
        "Cardiomegaly": ["heart"],
        "Pleural effusion": ["right_lung"],
    }
    result = CliRunner().invoke(
        main,
        ["labels", "--labeler", "example-keywords", "--label-set", "ct-rate", "--text", report],
    )
    assert result.exit_code == 0 and re.search(r"Pleural effusion\s+right_lung", result.output)
    labeler.cache_clear()


def test_a_broken_labeler_fails_the_rule_it_breaks():
    from ctbench.testing import check_labeler

    def ignores_negation():
        return lambda report: {"lung_pleural_effusion": ["right_lung"]} if report else {}

    with pytest.raises(AssertionError, match="labeler check 'normal_report' failed"):
        check_labeler(ignores_negation)

    def unordered():
        return lambda report: (
            {"lung_pleural_effusion": ["right_lung"], "heart_cardiomegaly": ["heart"]}
            if "effusion" in report and "No " not in report and "normal" not in report
            else {}
        )

    with pytest.raises(AssertionError, match="labeler check 'output_form' failed"):
        check_labeler(unordered)


# --- CT-RATE's manually labelled reports --------------------------------------------------


@needs_reports
def test_the_labeler_on_real_reports():
    """The figures of docs/labeler.md, as floors: micro F1 over CT-RATE's 800 labelled reports
    and on the sealed fold no rule was written from, every label's F1 over the 800."""
    from ctbench.core.api import create_labeler
    from ctbench.regions.labeler_scores import SEALED_FOLD, f1_table, predict, read_reports

    reports = read_reports(CT_RATE_REPORTS)
    assert len(reports.ids) == 800 and len(reports.labels) == 15
    predicted = predict(create_labeler("sarle"), reports.texts, reports.labels)
    every = f1_table(reports.truth, predicted, reports.labels)
    assert every["micro"]["f1"] >= 0.93, every["micro"]
    assert min(v["f1"] for k, v in every.items() if k != "micro") >= 0.83
    sealed = reports.fold(SEALED_FOLD)
    held = f1_table(reports.truth[sealed], predicted[sealed], reports.labels)
    assert held["micro"]["f1"] >= 0.91, held["micro"]


@needs_reports
def test_locations_on_real_reports():
    """The location truths (tests/data/ctrate_locations.csv, written from reading the reports:
    accession, label, organs, kind) cover every kind, and the labeler places them."""
    from ctbench.core.api import create_labeler
    from ctbench.regions.labeler_scores import (
        location_agreement,
        read_location_truths,
        read_reports,
    )

    truths = read_location_truths(REPO / "tests" / "data" / "ctrate_locations.csv")
    kinds = {t.kind for t in truths}
    assert len(truths) >= 100
    assert kinds == {
        "left", "right", "bilateral", "heart", "great_vessel", "mediastinum", "unspecified"
    }  # fmt: skip
    agreement = location_agreement(create_labeler("sarle"), read_reports(CT_RATE_REPORTS), truths)
    assert agreement["all"]["truths"] == len(truths)
    assert agreement["all"]["exact"] >= 0.95 * len(truths), agreement
    assert agreement["bilateral"]["exact"] == agreement["bilateral"]["truths"]


# --- the ct-rate dataset: released labels against the labeler -----------------------------


def test_data_check_reports_the_agreement_of_released_labels_and_the_labeler(tmp_path):
    names = [f"train_{p}_a_1.nii.gz" for p in range(1, 21)] + ["valid_900_a_1.nii.gz"]
    reports = {
        names[0]: "Right pleural effusion.",  # released and labeler agree
        names[1]: "Cardiomegaly.",  # the labeler alone
        names[2]: "The lungs are clear.",  # the released labels alone
    }
    positives = {names[0]: {"Pleural effusion"}, names[2]: {"Lung nodule"}}
    write_ct_rate(
        tmp_path / "ct-rate",
        dict.fromkeys(names, chest_volume()),
        TINY,
        positives=positives,
        reports=reports,
    )
    import ctbench

    source = ctbench.create_dataset(
        "ct-rate", data_root=tmp_path / "ct-rate", preset="tiny", cache_dir=tmp_path / "cache"
    )
    agreement = source.label_agreement()
    assert agreement["Pleural effusion"] == {
        "released": 1, "labeler": 1, "both": 1, "f1": 1.0, "kappa": 1.0
    }  # fmt: skip
    assert agreement["Cardiomegaly"] | {"kappa": None} == {
        "released": 0, "labeler": 1, "both": 0, "f1": 0.0, "kappa": None
    }  # fmt: skip
    assert agreement["Lung nodule"]["released"] == 1 and agreement["Lung nodule"]["f1"] == 0.0
    assert agreement["Emphysema"]["f1"] is None  # neither says it
    assert agreement["all"] | {"kappa": None} == {
        "released": 2, "labeler": 2, "both": 1, "f1": 0.5, "kappa": None, "reports": 3
    }  # fmt: skip
    env = {"CTBENCH_CACHE_DIR": str(tmp_path / "cache")}
    args = ["data", "check", "ct-rate", "--data-root", str(tmp_path / "ct-rate")]
    result = CliRunner(env=env).invoke(main, [*args, "--preset", "tiny", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "released labels against the report labeler, over 3 distinct reports" in result.output
    assert re.search(r"Pleural effusion\s+1\s+1\s+1\s+1\.000\s+1\.000", result.output)
    assert re.search(r"all\s+2\s+2\s+1\s+0\.500", result.output)


def test_ct_rate_without_released_labels_labels_its_reports(tmp_path):
    """A CT-RATE copy without the labels CSV: each volume's labels are what the labeler reads
    in its report; a volume without a report is a listed problem."""
    import ctbench

    names = [f"train_{p}_a_1.nii.gz" for p in range(1, 21)] + ["valid_900_a_1.nii.gz"]
    reports = {name: "No abnormality." for name in names[2:]}  # names[1]: no report
    reports[names[0]] = "Right pleural effusion. Millimetric lymph nodes in the mediastinum."
    write_ct_rate(tmp_path / "ct-rate", dict.fromkeys(names, chest_volume()), TINY, reports=reports)
    (
        tmp_path / "ct-rate" / "dataset" / "multi_abnormality_labels" / "train_predicted_labels.csv"
    ).unlink()
    source = ctbench.create_dataset(
        "ct-rate", data_root=tmp_path / "ct-rate", preset="tiny", cache_dir=tmp_path / "cache"
    )
    assert source.record["labels_from"] == {
        "train": "the report labeler (no labels CSV)",
        "valid": "released labels",
    }
    entry = source.entries["train_1_a_1"]
    assert [n for n, on in zip(source.label_names, entry.labels, strict=True) if on] == [
        "Lymphadenopathy",
        "Pleural effusion",
    ]
    assert entry.located["Pleural effusion"] == ["right_lung"]
    assert source.label_agreement()["all"]["reports"] == 1  # the valid volume: released labels
    (missing,) = source.problems
    assert missing["case_id"] == "train_2_a_1"
    assert "no train_predicted_labels.csv and no report" in missing["error"]


def test_partition_reads_reports_again_when_the_labeler_changes(tmp_path, monkeypatch):
    """PARTITION caches each case's placements: its cache key names the labeler and its
    fingerprint, so new rules (or another default labeler) never reuse old placements."""
    from ctbench.data.preprocess import Preprocessing
    from ctbench.regions import labeler as rules
    from ctbench.regions import labeling
    from ctbench.regions.partition import AllowedRegions

    def folder():
        labeling.labeler.cache_clear()
        shape = Preprocessing(volume_shape=(9, 16, 16))
        return AllowedRegions(["lung_nodule"], (3, 2, 2), shape, cache_dir=tmp_path).folder

    before = folder()
    assert folder() == before
    monkeypatch.setattr(rules, "fingerprint", lambda: "other rules")
    assert folder() != before
    labeling.labeler.cache_clear()
