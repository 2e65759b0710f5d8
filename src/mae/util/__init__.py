"""The ground floor: process-wide settings and small helpers that import nothing of mae."""
