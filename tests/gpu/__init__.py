"""The GPU suite (issue 23): runs where CUDA is present, skipped elsewhere (so never in CI). See conftest.py."""
