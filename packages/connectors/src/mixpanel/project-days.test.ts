import { describe, expect, it } from "vitest";
import { dayIn, daysFrom, endOfDay, isTimeZone, startOfDay } from "./project-days";

describe("project days", () => {
  it("names the day an instant falls on in the project's time zone", () => {
    const instant = new Date("2026-03-01T03:00:00Z");
    expect(dayIn("UTC", instant)).toBe("2026-03-01");
    expect(dayIn("America/New_York", instant)).toBe("2026-02-28");
    expect(dayIn("Asia/Tokyo", new Date("2026-02-28T15:00:00Z"))).toBe("2026-03-01");
  });

  it("starts and ends a day at its local midnight, across daylight saving changes", () => {
    expect(startOfDay("UTC", "2026-03-01")).toEqual(new Date("2026-03-01T00:00:00Z"));
    expect(startOfDay("America/New_York", "2026-03-01")).toEqual(new Date("2026-03-01T05:00:00Z"));
    // New York moves to UTC-4 on 2026-03-08 at 02:00: that day is 23 hours long.
    expect(startOfDay("America/New_York", "2026-03-08")).toEqual(new Date("2026-03-08T05:00:00Z"));
    expect(endOfDay("America/New_York", "2026-03-08")).toEqual(new Date("2026-03-09T04:00:00Z"));
    // Berlin returns to UTC+1 on 2026-10-25: that day is 25 hours long.
    expect(startOfDay("Europe/Berlin", "2026-10-25")).toEqual(new Date("2026-10-24T22:00:00Z"));
    expect(endOfDay("Europe/Berlin", "2026-10-25")).toEqual(new Date("2026-10-25T23:00:00Z"));
    // Santiago skips midnight when it moves its clocks forward (2026-09-06 00:00 → 01:00): the day starts at 01:00.
    expect(startOfDay("America/Santiago", "2026-09-06")).toEqual(new Date("2026-09-06T04:00:00Z"));
  });

  it("lists the days of a range, both ends included, and knows time zone names", () => {
    expect(daysFrom("2026-02-27", "2026-03-02")).toEqual(["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"]);
    expect(daysFrom("2026-03-02", "2026-03-01")).toEqual([]);
    expect(isTimeZone("Europe/Paris")).toBe(true);
    expect(isTimeZone("UTC")).toBe(true);
    expect(isTimeZone("Mars/Olympus_Mons")).toBe(false);
  });
});
