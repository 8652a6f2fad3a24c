"""The team's reference material (vendor specs, DBC files): ``shared/`` beside the repository."""
import os

REFERENCE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "reference")
DBC_DIR = os.path.join(REFERENCE_DIR, "dbc")
