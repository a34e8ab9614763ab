import AcceptanceCore
import Foundation
import Testing

@testable import Reports

@Suite("OCP stream writer")
struct OCPWriterTests {
    /// The series fast path writes exactly the bytes the general path makes of the same element (keys sorted,
    /// numbers and strings written the same way), so the stream a validator reads did not change when it got fast.
    @Test(arguments: [0.0, 300.1234, -0.5, 1e-7, 123_456_789.25, 2.0e21, 42])
    func aSeriesElementIsTheSameLineEitherWay(value: Double) {
        var general = OCPStream.Writer()
        var fast = OCPStream.Writer()
        general.sequence = 17
        fast.sequence = 17
        let stamp = "2026-12-01T05:59:50.872Z"
        general.step(
            "12", stamp,
            [
                "measurementSeriesElement": [
                    "measurementSeriesId": "12-0", "index": .number(3), "value": .number(value),
                    "timestamp": .string(stamp),
                ]
            ])
        fast.seriesElement(step: "12", series: "12-0", index: 3, value: value, at: stamp)
        #expect(fast.text == general.text)
        #expect(fast.sequence == 18 && general.sequence == 18)
    }

    /// Sample timestamps made a second at a time are the ones `Timestamp.string` makes, rounding included.
    @Test func sampleTimestampsMatchTheRecordsOwn() {
        var writer = StampWriter()
        let origin = Date(timeIntervalSince1970: 1_796_000_000.8725)
        var generator = SystemRandomNumberGenerator()
        var offsets: [Double] = [0, 0.0005, 0.9995, 0.999_999, 1, 59.9996, 86_399.9995]
        for _ in 0..<2_000 { offsets.append(Double.random(in: 0..<300_000, using: &generator)) }
        for offset in offsets.sorted() {
            let date = origin.addingTimeInterval(offset)
            var bytes: [UInt8] = []
            writer.append(date.timeIntervalSince1970, to: &bytes)
            #expect(String(decoding: bytes, as: UTF8.self) == Timestamp.string(date), "offset \(offset)")
        }
    }

    /// The series CSV read in one pass gives what reading it line by line with `Double(String)` gives: exact values,
    /// NaN for a missing or unreadable cell, lines without a time skipped, no final newline needed.
    @Test func theSeriesCSVIsReadExactly() {
        let csv = "t_s,a [kPa],b [°C]\n0,300.1234,30.5\n1,,31\n2,299.9999,x\n,1,2\n3.5,-1e-7,NaN\n4,2.5"
        let record = SeriesRecord(
            file: "s.csv", points: ["a", "b"], units: ["kPa", "°C"], samples: 5, intervalSeconds: 1)
        let data = SeriesData.parse(csv, record: record)
        #expect(data.times == [0, 1, 2, 3.5, 4])
        #expect(data.columns[0].map { $0.isNaN ? "nan" : "\($0)" } == ["300.1234", "nan", "299.9999", "-1e-07", "2.5"])
        #expect(data.columns[1].map { $0.isNaN ? "nan" : "\($0)" } == ["30.5", "31.0", "nan", "nan", "nan"])
        // The same with CRLF line endings, and a value written with 70 digits.
        let long = "1." + String(repeating: "0", count: 68) + "1"
        let crlf = "t_s,a [kPa],b [°C]\r\n0,300.1234,30.5\r\n1,\(long),31\r\n"
        let windows = SeriesData.parse(crlf, record: record)
        #expect(windows.times == [0, 1])
        #expect(windows.columns[1] == [30.5, 31], "no carriage return in the last cell")
        #expect(windows.columns[0] == [300.1234, 1])
    }

    /// Written a megabyte at a time to a file, the stream is byte for byte the one built in memory.
    @Test func theStreamWrittenInChunksIsTheSameFile() throws {
        let path = NSTemporaryDirectory() + "ocp-\(UUID().uuidString).jsonl"
        let file = try AtomicFileWriter(path: path)
        var chunked = OCPStream.Writer()
        chunked.sink = file
        var whole = OCPStream.Writer()
        for index in 0..<12_000 {
            let value = 300 - Double(index) * 1e-4
            chunked.seriesElement(step: "3", series: "3-0", index: index, value: value, at: "2026-12-01T06:00:00.000Z")
            whole.seriesElement(step: "3", series: "3-0", index: index, value: value, at: "2026-12-01T06:00:00.000Z")
            if index % 1000 == 0 {
                chunked.emit("2026-12-01T06:00:00.000Z", ["note": .number(Double(index))])
                whole.emit("2026-12-01T06:00:00.000Z", ["note": .number(Double(index))])
            }
        }
        chunked.flush()
        try file.commit()
        let written = try readFile(path, limit: 64 << 20)
        #expect(written.count > OCPStream.Writer.chunk, "more than one chunk")
        #expect(written == whole.bytes)
    }
}
