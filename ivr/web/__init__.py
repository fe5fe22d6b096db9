"""HTTP edge: admin API (token auth, JSON errors with stable ids), metrics, agent page, wallboard."""
