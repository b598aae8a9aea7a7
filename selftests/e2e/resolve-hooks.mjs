// Module resolution hook (registered by lib.mjs through node:module register()).
//
// The pinned peers are installed by scripts/e2e-deps.sh into
// ${BUILD_DIR}/e2e/node_modules, outside the source tree, so a bare specifier
// imported from selftests/e2e/*.mjs would not be found by Node's normal lookup.
// When that lookup fails, retry it as if the importing module lived in the
// install directory (full ESM semantics: "exports" maps, conditions, etc.).
let base;

export async function initialize(data) {
	base = data.base; // file: URL of the install dir, with a trailing slash
}

function isBare(spec) {
	return !/^(\.{0,2}\/|[a-zA-Z][a-zA-Z0-9+.-]*:)/.test(spec);
}

export async function resolve(specifier, context, nextResolve) {
	try {
		return await nextResolve(specifier, context);
	} catch (err) {
		if (!base || !isBare(specifier) || err?.code !== 'ERR_MODULE_NOT_FOUND')
			throw err;
		return nextResolve(specifier, { ...context, parentURL: base + 'package.json' });
	}
}
