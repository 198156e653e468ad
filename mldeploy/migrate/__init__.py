"""Migrations into mldeploy from other tools: ``copilot`` (AWS Copilot Load Balanced Web Service manifests)."""
