"""Small records written for the tests in each public case format (AgentClinic OSCE, AgentClinic NEJM, MediQ)."""

from __future__ import annotations

import copy
import json
from pathlib import Path


def osce(dx: str = "Community-acquired pneumonia", **actor_overrides) -> dict:
    """An AgentClinic OSCE record using every field the loader reads."""
    actor = {
        "Demographics": "61-year-old man",
        "History": "He has had a productive cough and fever for four days. He gets short of breath walking upstairs.",
        "Symptoms": {
            "Primary_Symptom": "Productive cough",
            "Secondary_Symptoms": ["Fever", "Chills", "Shortness of breath"],
        },
        "Past_Medical_History": "Hypertension. Information not provided.",
        "Social_History": "Smokes 10 cigarettes a day. Works as a bus driver.",
        "Review_of_Systems": "Denies chest pain or leg swelling.",
        "Current_Medications": ["Amlodipine 5 mg daily"],
        "Family_History": "Father had a myocardial infarction at 70.",
        "Allergies": "Penicillin causes a rash.",
    }
    actor.update(actor_overrides)
    return {
        "OSCE_Examination": {
            "Objective_for_Doctor": "Assess the patient with cough and fever.",
            "Patient_Actor": actor,
            "Physical_Examination_Findings": {
                "Vital_Signs": {"Temperature": "38.9°C", "Respiratory_Rate": "26 breaths/min"},
                "Chest_Examination": {"Auscultation": "Crackles at the left base"},
            },
            "Test_Results": {
                "Blood_Tests": {"WBC": "16.1 x10^9/L", "Procalcitonin": "Information not provided"},
                "Imaging": {"Chest_X-Ray": {"Findings": "Left lower lobe consolidation"}},
            },
            "Correct_Diagnosis": dx,
        }
    }


def osce_outside_table() -> dict:
    rec = osce(
        "Myasthenia gravis",
        Demographics="34-year-old woman",
        History="Two months of drooping eyelids and double vision that worsen in the evening.",
        Symptoms={"Primary_Symptom": "Drooping eyelids", "Secondary_Symptoms": ["Double vision"]},
    )
    rec["OSCE_Examination"]["Test_Results"] = {"Blood_Tests": {"Acetylcholine_Receptor_Antibodies": "Elevated"}}
    return rec


def osce_empty_symptoms() -> dict:
    """A record with nothing to take a complaint from: `"Symptoms": {}` and no History (medqa_extended's line 132
    has `"Symptoms": {}` but a History, and loads: see `osce_empty_primary`)."""
    rec = copy.deepcopy(osce())
    rec["OSCE_Examination"]["Patient_Actor"]["Symptoms"] = {}
    rec["OSCE_Examination"]["Patient_Actor"]["History"] = ""
    return rec


def osce_empty_primary() -> dict:
    """The shape of medqa_extended's line 132: `"Symptoms": {}`, the complaint only in the History."""
    rec = copy.deepcopy(osce())
    rec["OSCE_Examination"]["Patient_Actor"]["Symptoms"] = {}
    return rec


def nejm(correct: str = "Pulmonary sarcoidosis", *, marks: tuple[bool, ...] | None = None) -> dict:
    texts = ["Hypersensitivity pneumonitis", correct, "Lymphoma"]
    marks = marks or (False, True, False)
    return {
        "image_url": "https://images.example.org/challenge?id=42",
        "question": (
            "A 31-year-old woman presented to the clinic with a 5-month history of dry cough. "
            "She reported no fevers or rashes. On physical examination, fine crackles were heard at both bases. "
            "CT of the chest showed hilar lymphadenopathy (left). What is the most likely diagnosis?"
        ),
        "patient_info": (
            "For your role as a patient, here's what you need to know: - **Background**: You are a 31-year-old "
            "woman. - **Symptoms**: - You have been experiencing a dry cough for the past 5 months. - You have "
            "not had any fevers, night sweats, or rashes. - You feel short of breath on stairs. Remember, you "
            "are not aware of your diagnosis or the results of your tests."
        ),
        "physical_exams": (
            "Laboratory results: - Serum ACE: Elevated - Calcium: Normal Imaging results: - CT of the chest: "
            "Bilateral hilar lymphadenopathy - Transbronchial biopsy: Noncaseating granulomas"
        ),
        "answers": [{"text": t, "correct": m} for t, m in zip(texts, marks)],
        "type": ["CT scan"],
    }


def mediq(
    qid: int, question: str, answer: str, *, age: object = "22 years", gender: str = "Male", options: object = None
) -> dict:
    opts = options if options is not None else {"A": answer, "B": "Cellulitis", "C": "Gout", "D": "N/A"}
    return {
        "id": qid,
        "question": question,
        "context": [
            "A 22-year-old man comes to the clinic because of a painful, swollen right knee for 2 days.",
            "He denies fever or trauma.",
            "Examination shows a warm, tender right knee effusion.",
            "Synovial fluid culture grows gram-negative diplococci.",
        ],
        "options": opts,
        "answer": answer,
        "answer_idx": "A",
        "facts": [
            "1. The patient is a 22-year-old man.",
            "2. His right knee has been painful and swollen for 2 days.",
            "3. He denies fever or trauma.",
            "4. Examination shows a warm, tender right knee effusion.",
            "5. Synovial fluid culture grows gram-negative diplococci.",
        ],
        "patient": {"age": age, "gender": gender},
    }


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path
