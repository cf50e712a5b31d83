"""The choices the OpenI and MIMIC-CXR preparers take, and the steps to get MIMIC-CXR.

Plain constants without imports, so that ``python -m joimternet_lite prepare --help`` lists them
without loading the preparers (``datasets``, ``pydicom``), and every other command stays as fast.
"""

OPENI_TEXT_CHOICES = ("findings_or_impression", "findings_impression", "impression")
MIMIC_UNCERTAIN_POLICIES = ("keep", "zeros", "ones")
MIMIC_SPLIT_CHOICES = ("official", "paper")


def physionet_steps() -> str:
    """How to get MIMIC-CXR yourself: this package never downloads credentialed data."""
    return (
        "MIMIC-CXR is credentialed data; this package never downloads it. To get it:\n"
        "  1. create a PhysioNet account and complete the required CITI training;\n"
        "  2. sign the data use agreements of https://physionet.org/content/mimic-cxr-jpg/ and\n"
        "     https://physionet.org/content/mimic-cxr/ (reports are in mimic-cxr-reports.zip);\n"
        "  3. download: wget -r -N -c -np --user YOUR_USER --ask-password https://physionet.org/files/mimic-cxr-jpg/2.1.0/\n"
        "     (--ask-password keeps the password out of your shell history);\n"
        "  4. unzip mimic-cxr-reports.zip next to it, then run\n"
        "     python -m joimternet_lite prepare mimic-cxr --source physionet.org/files --out data/mimic"
    )
