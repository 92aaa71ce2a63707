"""Sample panels the README and `labinterp demo` walk through."""

from __future__ import annotations

from typing import Any

SAMPLE_PANELS: list[dict[str, Any]] = [
    {
        # API.md's example: twitching toes, weakness, a loop diuretic
        "accession": "DEMO-0001",
        "patient": {"id": "P-0042", "sex": "female", "birth_date": "1984-03-09"},
        "collected_at": "2026-11-20T08:30:00Z",
        "specimen": {"type": "serum", "hemolyzed": False},
        "results": [
            {"analyte": "magnesium", "value": 1.1, "unit": "mg/dL"},
            {"loinc": "2823-3", "value": 3.2, "unit": "mmol/L"},
            {"analyte": "calcium", "value": 8.1, "unit": "mg/dL"},
            {"analyte": "albumin", "value": 3.2, "unit": "g/dL"},
            {"analyte": "vitamin_d_25oh", "value": 14, "unit": "ng/mL"},
            {
                "analyte": "vitamin_b12",
                "value": 180,
                "unit": "pg/mL",
                "reference_range": {"low": 200, "high": 900},
            },
        ],
        "context": {
            "twitching": {"sites": ["toes"], "duration_days": 21, "frequency": "daily"},
            "symptoms": ["muscle_weakness", "numbness"],
            "factors": ["caffeine", "stress"],
            "medications": ["loop_diuretic"],
            "notes": "twitching in both big toes, worse in the evening",
        },
    },
    {
        # a critical potassium in a haemolysed sample
        "accession": "DEMO-0002",
        "patient": {"id": "P-0107", "sex": "male", "birth_date": "1951-07-30"},
        "collected_at": "2026-11-21T07:05:00Z",
        "specimen": {"type": "serum", "hemolyzed": True},
        "results": [
            {"analyte": "potassium", "value": 6.8, "unit": "mmol/L"},
            {"analyte": "sodium", "value": 138, "unit": "mmol/L"},
            {"analyte": "magnesium", "value": 0.82, "unit": "mmol/L"},
        ],
    },
    {
        # benign-looking eyelid twitching with coffee: everything in range
        "accession": "DEMO-0003",
        "patient": {"id": "P-0311", "sex": "female", "age_years": 29},
        "collected_at": "2026-11-22T10:15:00Z",
        "results": [
            {"analyte": "magnesium", "value": 2.0, "unit": "mg/dL"},
            {"analyte": "potassium", "value": 4.2, "unit": "mEq/L"},
            {"analyte": "calcium_ionized", "value": 1.21, "unit": "mmol/L"},
        ],
        "context": {
            "twitching": {"sites": ["left eyelid"], "duration_days": 5, "frequency": "daily"},
            "factors": ["caffeine", "fatigue"],
        },
    },
    {
        # a vegan on metformin with tingling and a borderline B12
        "accession": "DEMO-0004",
        "patient": {"id": "P-0420", "sex": "male", "birth_date": "1968-02-29"},
        "collected_at": "2026-11-23T09:00:00Z",
        "results": [
            {"analyte": "vitamin_b12", "value": 250, "unit": "pg/mL"},
            {"analyte": "folate", "value": 7.5, "unit": "ng/mL"},
            {"analyte": "vitamin_d_25oh", "value": 62, "unit": "nmol/L"},
        ],
        "context": {
            "twitching": {"sites": ["calf", "thigh"], "duration_days": 30},
            "symptoms": ["tingling"],
            "factors": ["vegan_diet"],
            "medications": ["metformin"],
        },
    },
    # earlier panels of two of the patients above: the review pages draw their trends
    {
        # P-0107's potassium two months before the critical one: in range
        "accession": "DEMO-0005",
        "patient": {"id": "P-0107", "sex": "male", "birth_date": "1951-07-30"},
        "collected_at": "2026-09-14T07:40:00Z",
        "specimen": {"type": "serum", "hemolyzed": False},
        "results": [
            {"analyte": "potassium", "value": 4.6, "unit": "mmol/L"},
            {"analyte": "sodium", "value": 140, "unit": "mmol/L"},
            {"analyte": "magnesium", "value": 0.78, "unit": "mmol/L"},
        ],
    },
    {
        # ... and a month before: rising, above the interval
        "accession": "DEMO-0006",
        "patient": {"id": "P-0107", "sex": "male", "birth_date": "1951-07-30"},
        "collected_at": "2026-10-19T08:10:00Z",
        "specimen": {"type": "serum", "hemolyzed": False},
        "results": [
            {"analyte": "potassium", "value": 5.6, "unit": "mmol/L"},
            {"analyte": "sodium", "value": 137, "unit": "mmol/L"},
            {"analyte": "magnesium", "value": 0.74, "unit": "mmol/L"},
        ],
    },
    {
        # P-0042's magnesium in the summer, already low
        "accession": "DEMO-0007",
        "patient": {"id": "P-0042", "sex": "female", "birth_date": "1984-03-09"},
        "collected_at": "2026-08-02T09:20:00Z",
        "results": [
            {"analyte": "magnesium", "value": 0.62, "unit": "mmol/L"},
            {"analyte": "potassium", "value": 3.6, "unit": "mmol/L"},
        ],
    },
]
