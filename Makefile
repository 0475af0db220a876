# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Every Python package, direct or not, pinned with its hashes (`make lock` writes it; see README "Development").
LOCK   := requirements.lock
# uv resolves the lock (universal: every platform's hashes); pip installs it, as set up on the machine.
UV_VERSION := 0.13.9
UV     := .tools/uv-$(UV_VERSION)/bin/uv
# Claude Code, for the end-to-end test of the Anthropic Messages API (from the npm registry).
TOOLS  := .tools
CLAUDE_CODE_VERSION := 2.1.197
TOOLS_STAMP := $(TOOLS)/.claude-code-$(CLAUDE_CODE_VERSION)
# Codex CLI, for the end-to-end test of the Responses API (npm pulls its per-platform binary as an
# optional dependency, e.g. @openai/codex-linux-x64; `codex --version` checks that it arrived).
CODEX_VERSION := 0.171.0
CODEX_STAMP := $(TOOLS)/.codex-$(CODEX_VERSION)
# Under CI=true a missing npm is an error: the end-to-end tests must run there, not skip.
NO_NPM = if [ "$${CI:-}" = "true" ]; then echo "npm not found: CI needs it for the $(1) end-to-end test" >&2; exit 1; \
	else echo "npm not found: the $(1) end-to-end test will be skipped"; fi

.PHONY: run test install bench clean team lock upgrade bubblewrap

# A changed lock gets a new venv: pip installs what the lock names but never removes what it dropped.
$(STAMP): $(LOCK) pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP) bubblewrap
	$(BIN)/understudy serve

# Team mode on one machine: S3 (weed mini), `understudy serve --workers 2` and two `understudy worker`s
# against the machine's Redis and PostgreSQL (UNDERSTUDY_REDIS_URL / UNDERSTUDY_DATABASE_URL override);
# Ctrl-C stops them all. See README "Team mode".
team: $(STAMP)
	UNDERSTUDY_DATA_DIR=$${UNDERSTUDY_DATA_DIR:-data/team} exec $(BIN)/python scripts/team.py

$(UV):
	$(PYTHON) -m venv $(TOOLS)/uv-$(UV_VERSION)
	$(TOOLS)/uv-$(UV_VERSION)/bin/python -m pip install --quiet uv==$(UV_VERSION)

# `make lock` after editing pyproject.toml: keeps every pin it can. `make upgrade`: the newest versions
# pyproject.toml allows. Both write requirements.lock; commit it, and the tests that ran on it.
# setuptools is the build backend of the editable install (installed without build isolation).
LOCK_COMPILE = echo setuptools | $(UV) pip compile pyproject.toml - --extra test --universal --python-version 3.11 \
	--generate-hashes --no-strip-markers --custom-compile-command "make lock" --quiet -o $(LOCK)
lock: $(UV)
	$(LOCK_COMPILE)

upgrade: $(UV)
	$(LOCK_COMPILE) --upgrade

$(TOOLS_STAMP):
	@if command -v npm >/dev/null 2>&1; then \
		npm install --silent --prefix $(TOOLS) --no-audit --no-fund @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION) && touch $(TOOLS_STAMP); \
	else $(call NO_NPM,Claude Code); fi

# After Claude Code's rule (order-only), so two `npm install`s never share .tools at once under -j.
$(CODEX_STAMP): | $(TOOLS_STAMP)
	@if command -v npm >/dev/null 2>&1; then \
		npm install --silent --prefix $(TOOLS) --no-audit --no-fund @openai/codex@$(CODEX_VERSION) \
		&& $(TOOLS)/node_modules/.bin/codex --version >/dev/null && touch $(CODEX_STAMP); \
	else $(call NO_NPM,Codex CLI); fi

# bubblewrap (`bwrap`): the code_interpreter sandbox (app/services/assistants/sandbox_bwrap.py). Where it is
# missing, root with apt-get installs Debian's package; otherwise code_interpreter refuses to run code.
# Under CI=true a missing bwrap is an error: the sandbox tests must run there, not skip.
bubblewrap:
	@if command -v bwrap >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null \
		&& command -v bwrap >/dev/null 2>&1; then echo "installed bubblewrap"; \
	elif [ "$${CI:-}" = "true" ]; then echo "bwrap not found and not installable: CI needs it for the code_interpreter sandbox" >&2; exit 1; \
	else echo "bwrap not found (apt-get install bubblewrap): code_interpreter will be unavailable"; fi

test: $(STAMP) $(TOOLS_STAMP) $(CODEX_STAMP) bubblewrap
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python scripts/bench_crud.py

clean:
	rm -rf $(VENV) $(TOOLS) data .pytest_cache
