import { describe, expect, it } from "vitest";
import { repeatedKeys } from "./query-api-client";

describe("repeatedKeys", () => {
  it("finds nothing in JSON without repeated keys, whatever its strings hold", () => {
    expect(repeatedKeys('{"a":1,"b":{"a":2},"c":["a","a",{"a":3}],"d":"\\"a\\":1,\\"a\\":2"}')).toEqual([]);
    expect(repeatedKeys("[1, 2, 3]")).toEqual([]);
    expect(repeatedKeys('"just a string"')).toEqual([]);
  });

  it("names each repeated key by its path, in objects nested in objects and arrays", () => {
    expect(
      repeatedKeys(
        '{"data":{"values":{"x | a":{"d":1},"x | b":{"d":2,"d":3},"x | a":{"d":4}}},"list":[{"k":1},{"k":1,"k":2}]}',
      ),
    ).toEqual([
      ["data", "values", "x | b", "d"],
      ["data", "values", "x | a"],
      ["list", "1", "k"],
    ]);
  });

  it("compares keys as JSON.parse reads them: escapes, non-ASCII and white space", () => {
    expect(repeatedKeys('{ "contr\\u00f4le" : 1 ,\n "contrôle" : 2 }')).toEqual([["contrôle"]]);
    expect(repeatedKeys('{"a\\"b":1,"a\\"b":2,"a\\\\":3}')).toEqual([['a"b']]);
    expect(repeatedKeys('{"処理":1,"処理":2}')).toEqual([["処理"]]);
  });
});
