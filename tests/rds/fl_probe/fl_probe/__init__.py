"""A probe app for FL jobs: clients report their data and what they can see."""
