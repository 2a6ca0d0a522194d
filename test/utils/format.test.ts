import { formatDuration, formatDurationLong, pct } from '../../lib/utils/format';
import { formatDuration as downloadFormatDuration } from '../../lib/download';
import { formatDurationLong as reportFormatDurationLong } from '../../lib/report';

describe('pct', () => {
  test('one decimal unless told', () => {
    expect(pct(0.7214)).toBe('72.1%');
    expect(pct(0.5, 0)).toBe('50%');
    expect(pct(1 / 3, 2)).toBe('33.33%');
    expect(pct(1)).toBe('100.0%');
  });
});

describe('formatDuration (compact)', () => {
  test('seconds, minutes, hours, zero-padded', () => {
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(3.2)).toBe('3s');
    expect(formatDuration(59.4)).toBe('59s');
    expect(formatDuration(125)).toBe('2m05s');
    expect(formatDuration(3725)).toBe('1h02m');
    expect(formatDuration(86399)).toBe('23h59m');
  });

  test('rounds to the second before choosing the unit', () => {
    expect(formatDuration(59.96)).toBe('1m00s');
    expect(formatDuration(3599.6)).toBe('1h00m');
    expect(formatDuration(119.5)).toBe('2m00s');
  });

  test("'?' for what is not a duration", () => {
    expect(formatDuration(NaN)).toBe('?');
    expect(formatDuration(Infinity)).toBe('?');
    expect(formatDuration(-1)).toBe('?');
  });

  test('is the one lib/download exports', () => {
    expect(downloadFormatDuration).toBe(formatDuration);
  });
});

describe('formatDurationLong (words)', () => {
  test('one decimal under a minute, then min/s, then h/min', () => {
    expect(formatDurationLong(undefined)).toBe('—');
    expect(formatDurationLong(0)).toBe('0.0 s');
    expect(formatDurationLong(42.06)).toBe('42.1 s');
    expect(formatDurationLong(59.94)).toBe('59.9 s');
    expect(formatDurationLong(725)).toBe('12 min 05 s');
    expect(formatDurationLong(3725)).toBe('1 h 02 min');
    expect(formatDurationLong(7380)).toBe('2 h 03 min');
  });

  test('rounds to the second above a minute', () => {
    expect(formatDurationLong(60.4)).toBe('1 min 00 s');
    expect(formatDurationLong(3599.7)).toBe('1 h 00 min');
  });

  test('is the one lib/report exports', () => {
    expect(reportFormatDurationLong).toBe(formatDurationLong);
  });
});
