"""Learners. Each learner is (or is wrapped as) an Emulator; see DESIGN.md."""
