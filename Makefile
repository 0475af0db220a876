# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Claude Code, for the end-to-end test of the Anthropic Messages API (from the npm registry).
TOOLS  := .tools
CLAUDE_CODE_VERSION := 2.1.197
TOOLS_STAMP := $(TOOLS)/.claude-code-$(CLAUDE_CODE_VERSION)
# Codex CLI, for the end-to-end test of the Responses API (npm pulls its per-platform binary as an
# optional dependency, e.g. @openai/codex-linux-x64; `codex --version` checks that it arrived).
CODEX_VERSION := 0.171.0
CODEX_STAMP := $(TOOLS)/.codex-$(CODEX_VERSION)

.PHONY: run test install bench clean team

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/understudy serve

# Team mode on one machine: S3 (weed mini), `understudy serve --workers 2` and two `understudy worker`s
# against the machine's Redis and PostgreSQL (UNDERSTUDY_REDIS_URL / UNDERSTUDY_DATABASE_URL override);
# Ctrl-C stops them all. See README "Team mode".
team: $(STAMP)
	UNDERSTUDY_DATA_DIR=$${UNDERSTUDY_DATA_DIR:-data/team} exec $(BIN)/python scripts/team.py

$(TOOLS_STAMP):
	@if command -v npm >/dev/null 2>&1; then \
		npm install --silent --prefix $(TOOLS) --no-audit --no-fund @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION) && touch $(TOOLS_STAMP); \
	else echo "npm not found: the Claude Code end-to-end test will be skipped"; fi

# After Claude Code's rule (order-only), so two `npm install`s never share .tools at once under -j.
$(CODEX_STAMP): | $(TOOLS_STAMP)
	@if command -v npm >/dev/null 2>&1; then \
		npm install --silent --prefix $(TOOLS) --no-audit --no-fund @openai/codex@$(CODEX_VERSION) \
		&& $(TOOLS)/node_modules/.bin/codex --version >/dev/null && touch $(CODEX_STAMP); \
	else echo "npm not found: the Codex CLI end-to-end test will be skipped"; fi

test: $(STAMP) $(TOOLS_STAMP) $(CODEX_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python scripts/bench_crud.py

clean:
	rm -rf $(VENV) $(TOOLS) data .pytest_cache
