import { describe, expect, it } from "vitest";
import { checkEmbeddings } from "./openai-embeddings.provider";

const item = (index: number, embedding: unknown) => ({ object: "embedding", index, embedding });

describe("checkEmbeddings: an embeddings response at the boundary", () => {
  it("returns one vector per input, in the inputs' order whatever the data's order", () => {
    const body = { object: "list", data: [item(1, [0, 1]), item(0, [1, 0])], model: "m", usage: { prompt_tokens: 2 } };
    expect(checkEmbeddings(body, 2, 2)).toEqual({
      vectors: [
        [1, 0],
        [0, 1],
      ],
      malformed: null,
    });
  });

  it.each([
    [{}, 1, 2, "response has no data array"],
    [{ data: [item(0, [1, 0])] }, 2, 2, "response has 1 embeddings for 2 inputs"],
    [
      { data: [item(0, [1, 0, 0])] },
      1,
      2,
      "data[0].embedding has 3 numbers, expected 2 (OUTCOME_RUNTIME_EMBEDDING_DIMENSIONS must be the model's vector length)",
    ],
    [{ data: [item(0, [1, null])] }, 1, 2, "data[0].embedding[1] is null, not a finite number"],
    [{ data: [item(0, [1, "0.5"])] }, 1, 2, 'data[0].embedding[1] is "0.5", not a finite number'],
    [
      { data: [item(0, "AACAPwAAAAA=")] },
      1,
      2,
      'data[0].embedding is not an array of numbers (encoding_format must be "float")',
    ],
    [{ data: [item(5, [1, 0])] }, 1, 2, "data[0].index is 5, not 0 to 0"],
    [{ data: [item(0, [1, 0]), item(0, [0, 1])] }, 2, 2, "data[1].index 0 repeats"],
  ])("refuses %j (%i inputs, %i dimensions): %s", (body, count, dimensions, malformed) => {
    expect(checkEmbeddings(body, count, dimensions)).toEqual({ vectors: null, malformed });
  });
});
