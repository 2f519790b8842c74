using System.Globalization;
using FractalMesh.Model.Sampling;
using Xunit;

namespace FractalMesh.Model.Tests;

public class MarScheduleUnitTests
{
    [Fact]
    public void PlanAndLinearGuidanceEqualTheReferenceTable()
    {
        var lines = File.ReadAllLines(TestData.Path("reference", "mar_schedule.tsv")).Skip(1).Select(l => l.Split('\t')).ToList();
        Assert.NotEmpty(lines);
        foreach (var group in lines.GroupBy(p => (S: int.Parse(p[0]), T: int.Parse(p[1]))))
        {
            var plan = MarSchedule.Plan(group.Key.S, group.Key.T);
            var rows = group.ToList();
            Assert.Equal(rows.Count, plan.Count);
            for (int i = 0; i < rows.Count; i++)
            {
                Assert.Equal(int.Parse(rows[i][2]), plan[i].Step);
                Assert.Equal(int.Parse(rows[i][3]), plan[i].MaskLenAfter);
                Assert.Equal(int.Parse(rows[i][4]), plan[i].Predicted);
                double cfg = MarSchedule.LinearCfg(4.0, group.Key.S, plan[i].MaskLenAfter);
                Assert.Equal(double.Parse(rows[i][5], CultureInfo.InvariantCulture), cfg, 9);
            }
            Assert.Equal(group.Key.S, plan.Sum(s => s.Predicted));
        }
    }
}
