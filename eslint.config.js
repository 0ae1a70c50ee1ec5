import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "certs/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: "readonly", console: "readonly" } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-console": ["error", { allow: ["error"] }],
    },
  },
  {
    // The CLI prints command results (certificate paths, the demo table) for people, and test helper programs
    // (the lab's rogue manager) print what they saw; on purpose.
    files: ["src/cli/**", "scripts/**", "test/**"],
    rules: { "no-console": "off" },
  },
);
