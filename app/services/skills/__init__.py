"""Skills (/v1/skills) and the hosted shell tool that runs with them."""
