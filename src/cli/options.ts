// Parsers for numeric command-line options: a bad value gets one error naming the option.

import { InvalidArgumentError } from "commander";

export function int(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}, got "${value}"`);
    return n;
  };
}

export function num(min: number, max = Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`expected a number from ${min} to ${max}, got "${value}"`);
    return n;
  };
}

export function intList(min: number) {
  return (value: string): number[] => {
    const parts = value.split(",").map((s) => s.trim());
    if (parts.some((p) => !/^\d+$/.test(p) || Number(p) < min)) throw new InvalidArgumentError(`expected comma-separated integers >= ${min}, got "${value}"`);
    return parts.map(Number);
  };
}
