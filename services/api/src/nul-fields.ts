/**
 * NUL characters (U+0000) in request bodies. Postgres stores no NUL in `text`
 * or `jsonb` (it answers "invalid byte sequence" or "unsupported Unicode
 * escape sequence"), so a NUL anywhere in a body is refused at the door with
 * the path of each field holding one, before any use case sees it.
 */

/** One field holding a NUL: its path (`body.title`, `body.arms.0.name`) and what to do. */
export interface NulField {
  readonly field: string;
  readonly message: string;
}

const MESSAGE = "contains a NUL character (U+0000), which cannot be stored; remove it";
const KEY_MESSAGE = "is a property name containing a NUL character (U+0000), which cannot be stored; rename it";

/** The path of `key` under `path`, in the notation of the schema errors (`body.arms.0.name`). */
function child(path: string, key: string | number): string {
  return `${path}.${typeof key === "string" ? key.replaceAll("\u0000", "\\u0000") : key}`;
}

/**
 * The fields of `value` (a parsed JSON or form body: objects, arrays,
 * strings) whose string value or property name contains U+0000, at most
 * `limit` of them. Walks iteratively: a 10 000-deep body
 * costs no stack. Values of other kinds (streams, buffers, numbers) are not
 * looked into.
 *
 * @example nulFields({ title: "a\u0000b" }) // [{ field: "body.title", message: "contains a NUL …" }]
 */
export function nulFields(value: unknown, root = "body", limit = 20): NulField[] {
  const found: NulField[] = [];
  const stack: [unknown, string][] = [[value, root]];
  while (stack.length > 0 && found.length < limit) {
    const [current, path] = stack.pop() as [unknown, string];
    if (typeof current === "string") {
      if (current.includes("\u0000")) found.push({ field: path, message: MESSAGE });
    } else if (Array.isArray(current)) {
      for (let i = current.length - 1; i >= 0; i--) stack.push([current[i], child(path, i)]);
    } else if (current !== null && typeof current === "object" && isPlain(current)) {
      const entries = Object.entries(current);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, inner] = entries[i] as [string, unknown];
        if (key.includes("\u0000")) found.push({ field: child(path, key), message: KEY_MESSAGE });
        stack.push([inner, child(path, key)]);
      }
    }
  }
  return found.slice(0, limit);
}

/**
 * A parsed body's object (`{}`, or the prototype-less records of the form and
 * query parsers), not a stream (a CSV body) or bytes.
 */
function isPlain(value: object): boolean {
  return !ArrayBuffer.isView(value) && typeof (value as { pipe?: unknown }).pipe !== "function";
}
