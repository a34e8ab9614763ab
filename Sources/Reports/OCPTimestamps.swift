import AcceptanceCore
import Foundation

/// A timestamp of at most 32 bytes (`2026-12-01T05:59:50.872Z` is 24), kept inline: no array per sample.
struct Stamp {
    private var storage: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    private(set) var count = 0

    init() {}

    /// A timestamp as text (a plain RFC 3339 UTC time: nothing in it needs escaping); cut at 32 bytes.
    init(_ text: String) {
        for byte in text.utf8.prefix(32) { append(byte) }
    }

    mutating func append(_ byte: UInt8) {
        guard count < 32 else { return }
        withUnsafeMutableBytes(of: &storage) { $0[count] = byte }
        count += 1
    }

    func append(to out: inout [UInt8]) {
        withUnsafeBytes(of: storage) { out.append(contentsOf: $0.prefix(count)) }
    }
}

/// Timestamps of samples as `Timestamp.string` writes them (`2026-12-01T05:59:50.872Z`), without formatting the
/// calendar date of every sample: the date is made once per day, the time of day by arithmetic.
struct StampWriter {
    private var day = Int.min
    private var prefix = Stamp()

    /// The time `interval` (seconds since 1970), rounded to the millisecond as `Timestamp.string` rounds it.
    mutating func stamp(_ interval: Double) -> Stamp {
        var seconds = Int(interval.rounded(.down))
        var millis = Int(((interval - Double(seconds)) * 1000).rounded())
        if millis >= 1000 {
            millis -= 1000
            seconds += 1
        }
        let (today, secondOfDay) = seconds.quotientAndRemainder(dividingBy: 86_400)
        let (dayNumber, second) = secondOfDay < 0 ? (today - 1, secondOfDay + 86_400) : (today, secondOfDay)
        if dayNumber != day {
            day = dayNumber
            // "YYYY-MM-DDT", from the record's own formatter at the day's first second.
            prefix = Stamp(String(Timestamp.string(Date(timeIntervalSince1970: Double(dayNumber * 86_400))).prefix(11)))
        }
        var out = prefix
        let hour = second / 3600
        let minute = second / 60 % 60
        let secondOfMinute = second % 60
        out.append(UInt8(48 + hour / 10))
        out.append(UInt8(48 + hour % 10))
        out.append(58)  // :
        out.append(UInt8(48 + minute / 10))
        out.append(UInt8(48 + minute % 10))
        out.append(58)
        out.append(UInt8(48 + secondOfMinute / 10))
        out.append(UInt8(48 + secondOfMinute % 10))
        out.append(46)  // .
        out.append(UInt8(48 + millis / 100))
        out.append(UInt8(48 + millis / 10 % 10))
        out.append(UInt8(48 + millis % 10))
        out.append(90)  // Z
        return out
    }

    /// The same, appended to `out`.
    mutating func append(_ interval: Double, to out: inout [UInt8]) {
        stamp(interval).append(to: &out)
    }
}
