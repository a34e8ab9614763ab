import Foundation
import FuzzTargets
import TestSupport
import Testing

/// CI's share of the fuzzing (issue 10): every seed in `Tests/FuzzCorpus/<target>/` and a few thousand seeded
/// mutations of them go through the same entry points libFuzzer drives, with no crash and no broken invariant.
/// The long runs (10 minutes per target, coverage-guided) are the README's `fuzz` command.
@Suite("Fuzz corpus replay")
struct CorpusReplayTests {
    static func corpus(_ target: FuzzTarget) throws -> [(String, [UInt8])] {
        let folder = "\(repositoryRoot)/Tests/FuzzCorpus/\(target.rawValue)"
        return try FileManager.default.contentsOfDirectory(atPath: folder).sorted().compactMap { name in
            FileManager.default.contents(atPath: "\(folder)/\(name)").map { (name, Array($0)) }
        }
    }

    @Test(arguments: FuzzTarget.allCases)
    func everySeedRunsCleanly(_ target: FuzzTarget) throws {
        let seeds = try Self.corpus(target)
        #expect(seeds.count >= 3, "\(target.rawValue): a seed corpus")
        for (name, data) in seeds { #expect(target.run(data), "\(target.rawValue)/\(name)") }
    }

    /// Byte flips, insertions, deletions and splices of the seeds, from a fixed generator: the same inputs every run.
    @Test(arguments: FuzzTarget.allCases)
    func seededMutationsRunCleanly(_ target: FuzzTarget) throws {
        let seeds = try Self.corpus(target).map(\.1)
        var random = SplitMix64(seed: 0xACCE_7A2C_E000 ^ UInt64(target.rawValue.utf8.count))
        let rounds = target == .yaml || target == .bundle ? 300 : 3000
        for round in 0..<rounds {
            guard var input = seeds.randomElement(using: &random) else { return }
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                let position = input.isEmpty ? 0 : Int.random(in: 0..<input.count, using: &random)
                switch Int.random(in: 0..<5, using: &random) {
                case 0 where !input.isEmpty: input[position] ^= UInt8(1) << UInt8.random(in: 0...7, using: &random)
                case 1: input.insert(UInt8.random(in: 0...255, using: &random), at: position)
                case 2 where !input.isEmpty: input.remove(at: position)
                case 3 where !input.isEmpty:
                    input[position] =
                        [0x00, 0x0A, 0x1B, 0x22, 0x26, 0x2A, 0x5B, 0x7B, 0xFF].randomElement(using: &random) ?? 0
                default:
                    if let other = seeds.randomElement(using: &random), !other.isEmpty {
                        let start = Int.random(in: 0..<other.count, using: &random)
                        input.insert(contentsOf: other[start..<min(other.count, start + 64)], at: position)
                    }
                }
            }
            #expect(target.run(input), "\(target.rawValue) round \(round): \(input.prefix(64))")
        }
    }
}
