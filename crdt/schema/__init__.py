"""Validated models of the desired state: plain types, no documents or storage."""
